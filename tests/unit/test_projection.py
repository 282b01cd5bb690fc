"""The projection and price grouping, without any infrastructure: checked against the oracle.

Events are folded as ingest folds them (orders the store holds dropped, the touched records
read, the fold committed) into the in-memory store, and read back page by page.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from query_service.view.projection import GROUPS, Changes
from shared.events import OrderPlaced, written_as
from tests import factories
from tests.oracle import ExpectedGroup, expected_views, stored_groups, stored_order_ids
from tests.query_fakes import MemoryPartitionStore

PLACED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def order(
    user_id: str, *items: tuple[str, int, int], order_id: uuid.UUID | None = None
) -> OrderPlaced:
    return factories.order(user_id, *items, order_id=order_id, placed_at=PLACED_AT)


def ingest(
    events: list[OrderPlaced], store: MemoryPartitionStore | None = None
) -> MemoryPartitionStore:
    store = store if store is not None else MemoryPartitionStore()
    apply(store, events)
    return store


def apply(store: MemoryPartitionStore, events: list[OrderPlaced]) -> Changes:
    return store.apply(factories.as_ingested(events), {})


@pytest.mark.parametrize(
    ("price", "group"),
    [
        (1, "cheap"),
        (499, "cheap"),
        (500, "affordable"),
        (5000, "affordable"),
        (5001, "expensive"),
        (10_000_000, "expensive"),
    ],
)
def test_group_boundaries(price: int, group: str) -> None:
    groups = stored_groups(ingest([order("u1", ("S", price, 3))]).reader(), "u1")
    assert groups[group] == ExpectedGroup({("S", price): ("Item S", 3, 1)}, 3, 3 * price)
    assert [g for g in GROUPS if groups[g].item_count] == [group]


def test_lines_merge_by_sku_and_price_and_sum_quantities() -> None:
    first = order("u1", ("A", 100, 2), ("A", 200, 1))
    second = order("u1", ("A", 100, 5))
    cheap = stored_groups(ingest([first, second]).reader(), "u1")["cheap"]
    assert cheap.lines == {("A", 100): ("Item A", 7, 2), ("A", 200): ("Item A", 1, 1)}
    assert cheap.item_count == 8
    assert cheap.total_minor == 7 * 100 + 200


def test_same_line_twice_in_one_order_counts_the_order_once() -> None:
    event = order("u1", ("A", 700, 1), ("A", 700, 2))
    affordable = stored_groups(ingest([event]).reader(), "u1")["affordable"]
    assert affordable.lines == {("A", 700): ("Item A", 3, 1)}


def test_duplicate_order_changes_nothing() -> None:
    event = order("u1", ("A", 700, 1))
    store = ingest([event])
    once = stored_groups(store.reader(), "u1")
    retried = order("u1", ("B", 9999, 4), order_id=event.order_id)
    again = apply(store, [event, retried])
    assert not again.lines
    assert not again.orders
    assert again.duplicates == 2
    assert stored_groups(store.reader(), "u1") == once


def test_batch_counts_duplicates_and_records_the_applied_events() -> None:
    event = order("u1", ("A", 700, 1))
    result = apply(MemoryPartitionStore(), [event, event])
    assert result.duplicates == 1
    assert [(applied.event.order_id, applied.sequence) for applied in result.orders] == [
        (str(event.order_id), 1)
    ]


# Property tests: the projection against the oracle, in batches of any size.

users = st.sampled_from(["u1", "u2", "u3"])
item = st.tuples(
    st.sampled_from(["A", "B", "C"]),
    st.one_of(st.integers(1, 10_000), st.sampled_from([499, 500, 5000, 5001])),
    st.integers(1, 1000),
)
order_ids = st.sampled_from([uuid.UUID(int=i) for i in range(1, 8)])
events = st.lists(
    st.builds(
        lambda user, items, oid: order(user, *items, order_id=oid),
        users,
        st.lists(item, min_size=1, max_size=5),
        order_ids,
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(events, st.integers(1, 10), st.integers(1, 6))
def test_batches_paged_through_equal_the_oracle(
    stream: list[OrderPlaced], batch_size: int, page_size: int
) -> None:
    store = MemoryPartitionStore()
    for start in range(0, len(stream), batch_size):
        apply(store, stream[start : start + batch_size])
    expected = expected_views(stream)
    reader = store.reader()
    for user in ("u1", "u2", "u3"):
        wanted = expected.get(user)
        groups = stored_groups(reader, user, page_size)
        if wanted is None:
            assert all(group == ExpectedGroup() for group in groups.values())
            continue
        assert groups == wanted.groups
        assert stored_order_ids(reader, user, page_size) == wanted.order_ids


# Versions: the same orders written as v1 and as v2 fold to the same views, whichever version
# each event of a stream was written in.


@settings(max_examples=200, deadline=None)
@given(events, st.lists(st.sampled_from([1, 2]), min_size=30, max_size=30), st.integers(1, 10))
def test_v1_and_v2_encodings_of_the_same_orders_fold_to_the_same_view(
    stream: list[OrderPlaced], versions: list[int], batch_size: int
) -> None:
    all_v1, all_v2, mixed = MemoryPartitionStore(), MemoryPartitionStore(), MemoryPartitionStore()
    as_v1 = [written_as(event, 1) for event in stream]
    mixed_stream = [written_as(e, v) for e, v in zip(stream, versions, strict=False)]
    for start in range(0, len(stream), batch_size):
        end = start + batch_size
        all_v1.apply(factories.as_ingested(as_v1[start:end]), {})
        all_v2.apply(factories.as_ingested(stream[start:end]), {})
        mixed.apply(factories.as_ingested(mixed_stream[start:end]), {})
    expected = expected_views(stream)
    for user in ("u1", "u2", "u3"):
        views = [stored_groups(store.reader(), user) for store in (all_v1, all_v2, mixed)]
        assert views[0] == views[1] == views[2]
        if user in expected:
            assert views[0] == expected[user].groups
        orders = [stored_order_ids(store.reader(), user) for store in (all_v1, all_v2, mixed)]
        assert orders[0] == orders[1] == orders[2]
