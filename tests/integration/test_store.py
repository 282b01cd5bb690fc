"""The RocksDB view store on a real database in tmp_path."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from rocksdict import Options, Rdict

from query_service.exceptions import StateDirError
from query_service.ingest.batch import fold_new
from query_service.ports import PartitionStore
from query_service.store import statedir
from query_service.store.rocks import RocksPartitionStore, RocksPartitionStores, is_database
from query_service.view.projection import GROUPS, Changes, Line, LineId, Summary
from shared.events import LineItem, OrderPlaced
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
    return fold_new(store, as_ingested(events))


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
