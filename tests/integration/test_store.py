"""The RocksDB view store on a real database in tmp_path."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from rocksdict import Options, Rdict

from query_service.exceptions import StateDirError
from query_service.ports import PartitionStore
from query_service.store import statedir
from query_service.store.rocks import RocksPartitionStore, RocksPartitionStores, is_database
from query_service.view import projection
from query_service.view.projection import GROUPS, Changes, Line, LineId, Summary
from shared.events import LineItemV1 as LineItem
from shared.events import OrderPlacedV1 as OrderPlaced
from tests.factories import as_ingested
from tests.oracle import stored_groups
from tests.query_fakes import MemoryPartitionStore


def event(user_id: str, price: int = 700, order_id: uuid.UUID | None = None) -> OrderPlaced:
    return OrderPlaced(
        event_id=uuid.uuid4(),
        order_id=order_id or uuid.uuid4(),
        user_id=user_id,
        placed_at=datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC),
        items=(LineItem(sku="S1", name="Spoon", unit_price_minor=price, quantity=2),),
    )


def fold(store: PartitionStore, events: list[OrderPlaced]) -> Changes:
    """What `apply` folds, step by step through the store's parts (the reference for it)."""
    ingested = as_ingested(events)
    known = store.known_orders([(e.user_id, e.order_id) for e in ingested])
    new = [e for e, held in zip(ingested, known, strict=True) if not held]
    changes = projection.fold(new, *store.records(*projection.touched(new)))
    changes.duplicates += len(ingested) - len(new)
    return changes


@pytest.fixture(params=["rocksdb", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> PartitionStore:
    if request.param == "memory":
        return MemoryPartitionStore()
    return RocksPartitionStore(tmp_path / "db", "orders")


def test_commit_stores_records_orders_and_offsets_together(store: PartitionStore) -> None:
    first = event("alice")
    store.commit(fold(store, [first, event("bob")]), {0: 10, 3: 4})
    reader = store.reader()
    assert reader.summaries("alice", ["affordable"])["affordable"] == Summary(2, 1400, 1)
    assert reader.summaries("carol", ["affordable"])["affordable"] is None
    assert store.applied_offsets() == {0: 10, 3: 4}
    order = reader.order("alice", str(first.order_id))
    assert order is not None
    assert orjson.loads(order)["items"][0]["sku"] == "S1"
    assert reader.order("bob", str(first.order_id)) is None
    store.close()


def test_a_reader_sees_one_state_whatever_commits_after_it(store: PartitionStore) -> None:
    store.commit(fold(store, [event("alice")]), {0: 0})
    reader = store.reader()
    store.commit(fold(store, [event("alice", price=100)]), {0: 1})
    assert reader.summaries("alice", GROUPS) == {
        "cheap": None,
        "affordable": Summary(2, 1400, 1),
        "expensive": None,
    }
    assert reader.lines("alice", "cheap", None, 10) == []
    assert store.reader().summaries("alice", ["cheap"])["cheap"] == Summary(2, 200, 1)


def test_reopen_keeps_records_and_offsets(tmp_path: Path) -> None:
    store = RocksPartitionStore(tmp_path / "db", "orders")
    store.commit(fold(store, [event("alice")]), {2: 41})
    store.commit(fold(store, [event("alice")]), {2: 42, 5: 0})
    store.close()
    reopened = RocksPartitionStore(tmp_path / "db", "orders")
    assert reopened.applied_offsets() == {2: 42, 5: 0}
    lines = reopened.reader().lines("alice", "affordable", None, 10)
    assert lines == [(LineId("alice", "affordable", "S1", 700), Line("Spoon", 4, 2))]
    reopened.close()


def test_a_batch_is_all_or_nothing(tmp_path: Path) -> None:
    # A value that cannot be encoded fails the commit before anything is written.
    store = RocksPartitionStore(tmp_path / "db", "orders")
    changes = fold(store, [event("alice"), event("bob")])
    line_id = next(iter(changes.lines))
    changes.lines[line_id] = Line("Spoon", "two", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.commit(changes, {0: 7})
    assert store.applied_offsets() == {}
    store.close()
    reopened = RocksPartitionStore(tmp_path / "db", "orders")
    assert reopened.reader().summaries("alice", ["affordable"]) == {"affordable": None}
    assert reopened.applied_offsets() == {}
    reopened.close()


def test_a_view_of_another_topic_is_refused(tmp_path: Path) -> None:
    RocksPartitionStore(tmp_path / "db", "orders").close()
    with pytest.raises(StateDirError, match="orders"):
        RocksPartitionStore(tmp_path / "db", "other-topic")


def test_duplicate_detection_survives_reopen(tmp_path: Path) -> None:
    store = RocksPartitionStore(tmp_path / "db", "orders")
    first = event("alice")
    store.commit(fold(store, [first]), {0: 0})
    store.close()
    store = RocksPartitionStore(tmp_path / "db", "orders")
    again = fold(store, [event("alice", price=99, order_id=first.order_id)])
    assert again.duplicates == 1
    assert not again.lines
    assert not again.orders
    store.close()


def test_a_database_of_the_first_format_is_recognised(tmp_path: Path) -> None:
    db = Rdict(str(tmp_path / "db"), Options(raw_mode=True))
    db[b"m:topic"] = b"orders"
    db[b"v:alice"] = b'{"groups": {}, "order_ids": []}'
    db[b"p:0"] = b"12"
    db.close()
    assert is_database(tmp_path / "db")
    # A version of this format is a folder of partition databases: never taken for one.
    stores = RocksPartitionStores(tmp_path / "v2", "orders")
    stores.open(0)
    stores.close()
    assert not is_database(tmp_path / "v2")


def test_lines_of_a_big_group_page_in_order_on_rocksdb(tmp_path: Path) -> None:
    store = RocksPartitionStore(tmp_path / "db", "orders")
    skus = [f"SKU-{i:03d}" for i in range(120)] + ["a", "A", "A-1", "Z\u00e9", "!"]
    events = [
        OrderPlaced(
            event_id=uuid.uuid4(),
            order_id=uuid.uuid4(),
            user_id="big",
            placed_at=datetime(2026, 5, 6, tzinfo=UTC),
            items=tuple(
                LineItem(sku=sku, name=f"N,{sku}", unit_price_minor=p, quantity=1)
                for sku in skus
                for p in (100, 99)
            )[i : i + 50],
        )
        for i in range(0, 250, 50)
    ]
    store.commit(fold(store, events), {0: 4})
    groups = stored_groups(store.reader(), "big", page_size=13)
    assert sorted(groups["cheap"].lines) == sorted((sku, p) for sku in skus for p in (100, 99))
    keys = []
    after = None
    reader = store.reader()
    while page := reader.lines("big", "cheap", after, 17):
        keys += [(line_id.sku, line_id.unit_price_minor) for line_id, _ in page]
        after = keys[-1]
    assert keys == sorted(keys)
    assert groups["cheap"].lines[("A", 99)] == ("N,A", 1, 1)
    store.close()


def test_swap_points_current_at_the_new_version(tmp_path: Path) -> None:
    first = statedir.current_version(tmp_path)
    assert statedir.current_version(tmp_path) == first
    second = statedir.new_version(tmp_path)
    statedir.swap(tmp_path, second)
    assert statedir.current_version(tmp_path) == second.resolve()
    assert first.exists()


def test_apply_stores_what_its_parts_would_in_one_read_and_one_write(tmp_path: Path) -> None:
    batches = [
        [event("alice"), event("bob", price=99), event("alice", price=5001)],
        [event("alice"), event("carol", price=5000), event("bob", price=99)],
    ]
    again = batches[0][1]
    batches.append([again, event("bob", price=99), again])  # an order seen before, twice
    stepwise, applied = MemoryPartitionStore(), RocksPartitionStore(tmp_path / "p", "orders")
    for offset, batch in enumerate(batches):
        expected = fold(stepwise, batch)
        stepwise.commit(expected, {0: offset})
        changes = applied.apply(as_ingested(batch), {0: offset})
        assert changes == expected
    assert changes.duplicates == 2
    for user in ("alice", "bob", "carol"):
        assert stored_groups(applied.reader(), user) == stored_groups(stepwise.reader(), user)
        assert applied.reader().version(user) == stepwise.reader().version(user)
    assert applied.applied_offsets() == {0: 2}
    applied.close()


def test_a_partition_in_an_older_layout_is_dropped_to_be_built_again(tmp_path: Path) -> None:
    stores = RocksPartitionStores(tmp_path, "orders")
    old = stores.open(3)
    old.apply(as_ingested([event("alice")]), {3: 7})
    old.write([(b"m:format", b"2")])  # what a store of format 2 holds
    stores.close()
    reopened = RocksPartitionStores(tmp_path, "orders")
    store = reopened.open(3)
    assert store.applied_offsets() == {}  # nothing applied: consumed again from the start
    assert store.reader().version("alice") is None
    reopened.close()
    again = RocksPartitionStores(tmp_path, "orders")
    assert again.open(3).applied_offsets() == {}  # format 3 now: kept as it is
    again.close()


def test_one_order_id_under_two_users_is_two_orders(store: PartitionStore) -> None:
    shared = uuid.uuid4()
    changes = store.apply(
        as_ingested([event("dave", order_id=shared), event("erin", 99, order_id=shared)]), {0: 1}
    )
    assert changes.duplicates == 0
    assert store.known_orders([("dave", str(shared)), ("erin", str(shared))]) == [True, True]
    assert stored_groups(store.reader(), "erin")["cheap"].lines == {("S1", 99): ("Spoon", 2, 1)}
    store.close()
