"""The RocksDB view store on a real database in tmp_path."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from query_service import statedir
from query_service.exceptions import StateDirError
from query_service.ports import ViewStore
from query_service.projection import BatchResult, empty_view, fold_batch
from query_service.store import RocksViewStore
from shared.events import LineItem, OrderPlaced
from tests.factories import as_ingested
from tests.query_fakes import MemoryViewStore


def event(user_id: str, price: int = 700, order_id: uuid.UUID | None = None) -> OrderPlaced:
    return OrderPlaced(
        event_id=uuid.uuid4(),
        order_id=order_id or uuid.uuid4(),
        user_id=user_id,
        placed_at=datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC),
        items=(LineItem(sku="S1", name="Spoon", unit_price_minor=price, quantity=2),),
    )


def fold(store: ViewStore, events: list[OrderPlaced]) -> BatchResult:
    users = list(dict.fromkeys(e.user_id for e in events))
    views = {
        user: view if view is not None else empty_view()
        for user, view in zip(users, store.views(users), strict=True)
    }
    return fold_batch(views, as_ingested(events))


@pytest.fixture(params=["rocksdb", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ViewStore:
    if request.param == "memory":
        return MemoryViewStore()
    return RocksViewStore(tmp_path / "db", "orders")


def test_commit_stores_views_orders_and_offsets_together(store: ViewStore) -> None:
    first = event("alice")
    store.commit(fold(store, [first, event("bob")]), {0: 10, 3: 4})
    alice, bob, carol = store.views(["alice", "bob", "carol"])
    assert alice is not None
    assert alice["groups"]["affordable"]["total_minor"] == 1400
    assert bob is not None
    assert carol is None
    assert store.applied_offsets() == {0: 10, 3: 4}
    order = store.order("alice", str(first.order_id))
    assert order is not None
    assert order["items"][0]["sku"] == "S1"
    assert store.order("bob", str(first.order_id)) is None
    store.close()


def test_reopen_keeps_views_and_offsets(tmp_path: Path) -> None:
    store = RocksViewStore(tmp_path / "db", "orders")
    store.commit(fold(store, [event("alice")]), {2: 41})
    store.commit(fold(store, [event("alice")]), {2: 42, 5: 0})
    store.close()
    reopened = RocksViewStore(tmp_path / "db", "orders")
    assert reopened.applied_offsets() == {2: 42, 5: 0}
    (alice,) = reopened.views(["alice"])
    assert alice is not None
    assert alice["groups"]["affordable"]["item_count"] == 4
    reopened.close()


def test_a_batch_is_all_or_nothing(tmp_path: Path) -> None:
    # A value orjson cannot encode fails the commit before anything is written.
    store = RocksViewStore(tmp_path / "db", "orders")
    result = fold(store, [event("alice"), event("bob")])
    result.views["bob"]["order_ids"].append(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.commit(result, {0: 7})
    assert store.applied_offsets() == {}
    store.close()
    reopened = RocksViewStore(tmp_path / "db", "orders")
    assert reopened.views(["alice", "bob"]) == [None, None]
    assert reopened.applied_offsets() == {}
    reopened.close()


def test_a_view_of_another_topic_is_refused(tmp_path: Path) -> None:
    RocksViewStore(tmp_path / "db", "orders").close()
    with pytest.raises(StateDirError, match="orders"):
        RocksViewStore(tmp_path / "db", "other-topic")


def test_duplicate_detection_survives_reopen(tmp_path: Path) -> None:
    store = RocksViewStore(tmp_path / "db", "orders")
    first = event("alice")
    store.commit(fold(store, [first]), {0: 0})
    store.close()
    store = RocksViewStore(tmp_path / "db", "orders")
    again = fold(store, [event("alice", price=99, order_id=first.order_id)])
    assert again.duplicates == 1
    assert not again.views
    assert not again.applied
    store.close()


def test_swap_points_current_at_the_new_version(tmp_path: Path) -> None:
    first = statedir.current_version(tmp_path)
    assert statedir.current_version(tmp_path) == first
    second = statedir.new_version(tmp_path)
    statedir.swap(tmp_path, second)
    assert statedir.current_version(tmp_path) == second.resolve()
    assert first.exists()
