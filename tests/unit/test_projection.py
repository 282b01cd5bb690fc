"""The projection and price grouping, without any infrastructure: checked against the oracle."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from query_service.projection import GROUPS, BatchResult, ItemsView, empty_view, fold_batch
from shared.events import OrderPlaced
from tests import factories
from tests.oracle import ExpectedGroup, expected_views, stored_groups, stored_order_ids

PLACED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def order(
    user_id: str, *items: tuple[str, int, int], order_id: uuid.UUID | None = None
) -> OrderPlaced:
    return factories.order(user_id, *items, order_id=order_id, placed_at=PLACED_AT)


def fold(events: list[OrderPlaced], views: dict[str, ItemsView] | None = None) -> BatchResult:
    """The projection's fold of `events` into `views` (changed in place; empty if None)."""
    owned = views if views is not None else {}
    for event in events:
        owned.setdefault(event.user_id, empty_view())
    return fold_batch(owned, factories.as_ingested(events))


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
    view = fold([order("u1", ("S", price, 3))]).views["u1"]
    groups = stored_groups(view)
    assert groups[group] == ExpectedGroup({("S", price): ("Item S", 3, 1)}, 3, 3 * price)
    assert [g for g in GROUPS if groups[g].item_count] == [group]


def test_lines_merge_by_sku_and_price_and_sum_quantities() -> None:
    first = order("u1", ("A", 100, 2), ("A", 200, 1))
    second = order("u1", ("A", 100, 5))
    cheap = stored_groups(fold([first, second]).views["u1"])["cheap"]
    assert cheap.lines == {("A", 100): ("Item A", 7, 2), ("A", 200): ("Item A", 1, 1)}
    assert cheap.item_count == 8
    assert cheap.total_minor == 7 * 100 + 200


def test_same_line_twice_in_one_order_counts_the_order_once() -> None:
    event = order("u1", ("A", 700, 1), ("A", 700, 2))
    affordable = stored_groups(fold([event]).views["u1"])["affordable"]
    assert affordable.lines == {("A", 700): ("Item A", 3, 1)}


def test_duplicate_order_changes_nothing() -> None:
    event = order("u1", ("A", 700, 1))
    views: dict[str, ItemsView] = {}
    fold([event], views)
    once = stored_groups(views["u1"])
    retried = order("u1", ("B", 9999, 4), order_id=event.order_id)
    again = fold([event, retried], views)
    assert not again.views
    assert again.duplicates == 2
    assert stored_groups(views["u1"]) == once


def test_batch_counts_duplicates_and_records_the_applied_events() -> None:
    event = order("u1", ("A", 700, 1))
    result = fold([event, event])
    assert result.duplicates == 1
    assert [applied.order_id for applied in result.applied] == [str(event.order_id)]


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
@given(events, st.integers(1, 10))
def test_batches_fold_to_the_oracle(stream: list[OrderPlaced], batch_size: int) -> None:
    views: dict[str, ItemsView] = {}
    for start in range(0, len(stream), batch_size):
        fold(stream[start : start + batch_size], views)
    expected = expected_views(stream)
    assert {user: stored_groups(view) for user, view in views.items()} == {
        user: view.groups for user, view in expected.items()
    }
    assert {user: stored_order_ids(view) for user, view in views.items()} == {
        user: view.order_ids for user, view in expected.items()
    }
