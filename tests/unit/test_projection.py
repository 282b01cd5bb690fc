"""The projection and price grouping, without any infrastructure."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from query_service.projection import (
    GROUPS,
    ItemsView,
    apply,
    apply_batch,
    empty_view,
    line_key,
)
from shared.events import OrderPlaced
from tests import factories

PLACED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def order(
    user_id: str, *items: tuple[str, int, int], order_id: uuid.UUID | None = None
) -> OrderPlaced:
    return factories.order(user_id, *items, order_id=order_id, placed_at=PLACED_AT)


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
    view = apply(empty_view(), order("u1", ("S", price, 3)))
    assert view["groups"][group]["item_count"] == 3
    assert view["groups"][group]["total_minor"] == 3 * price
    assert [g for g in GROUPS if view["groups"][g]["item_count"]] == [group]


def test_lines_merge_by_sku_and_price_and_sum_quantities() -> None:
    first = order("u1", ("A", 100, 2), ("A", 200, 1))
    second = order("u1", ("A", 100, 5))
    view = apply(apply(empty_view(), first), second)
    cheap = view["groups"]["cheap"]
    assert cheap["lines"][line_key("A", 100)]["quantity"] == 7
    assert cheap["lines"][line_key("A", 100)]["order_ids"] == [
        str(first.order_id),
        str(second.order_id),
    ]
    assert cheap["lines"][line_key("A", 200)]["quantity"] == 1
    assert cheap["item_count"] == 8
    assert cheap["total_minor"] == 7 * 100 + 200


def test_same_line_twice_in_one_order_lists_the_order_once() -> None:
    event = order("u1", ("A", 700, 1), ("A", 700, 2))
    line = apply(empty_view(), event)["groups"]["affordable"]["lines"][line_key("A", 700)]
    assert line["quantity"] == 3
    assert line["order_ids"] == [str(event.order_id)]


def test_duplicate_order_changes_nothing() -> None:
    event = order("u1", ("A", 700, 1))
    once = apply(empty_view(), event)
    retried = order("u1", ("B", 9999, 4), order_id=event.order_id)
    assert apply(once, event) == once
    assert apply(once, retried) == once


def test_apply_leaves_its_input_unchanged() -> None:
    before = apply(empty_view(), order("u1", ("A", 700, 1)))
    snapshot = repr(before)
    apply(before, order("u1", ("A", 700, 5), ("B", 1, 1)))
    assert repr(before) == snapshot


def test_batch_counts_duplicates_and_records_orders() -> None:
    event = order("u1", ("A", 700, 1))
    result = apply_batch({"u1": None}, [event, event])
    assert result.duplicates == 1
    assert [o["order_id"] for o in result.orders] == [str(event.order_id)]
    assert result.orders[0]["placed_at"] == PLACED_AT.isoformat()


# Property tests: an independent fold in plain Python against the projection.

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


def expected_views(stream: list[OrderPlaced]) -> dict[str, dict[str, Any]]:
    seen: set[tuple[str, str]] = set()
    result: dict[str, dict[str, Any]] = {}
    for event in stream:
        oid = str(event.order_id)
        if (event.user_id, oid) in seen:
            continue
        seen.add((event.user_id, oid))
        groups = result.setdefault(
            event.user_id, defaultdict(lambda: {"lines": {}, "n": 0, "t": 0})
        )
        for it in event.items:
            name = (
                "cheap"
                if it.unit_price_minor < 500
                else ("affordable" if it.unit_price_minor <= 5000 else "expensive")
            )
            group = groups[name]
            group["n"] += it.quantity
            group["t"] += it.unit_price_minor * it.quantity
            line = group["lines"].setdefault((it.sku, it.unit_price_minor), [it.name, 0, []])
            line[1] += it.quantity
            if oid not in line[2]:
                line[2].append(oid)
    return result


def normalise(view: ItemsView) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, group in view["groups"].items():
        if group["item_count"]:
            out[name] = {
                "lines": {
                    (ln["sku"], ln["unit_price_minor"]): [
                        ln["name"],
                        ln["quantity"],
                        ln["order_ids"],
                    ]
                    for ln in group["lines"].values()
                },
                "n": group["item_count"],
                "t": group["total_minor"],
            }
    return out


@settings(max_examples=200, deadline=None)
@given(events)
def test_fold_equals_independent_expectation(stream: list[OrderPlaced]) -> None:
    views: dict[str, ItemsView] = {}
    for event in stream:
        views[event.user_id] = apply(views.get(event.user_id, empty_view()), event)
    expected = {user: dict(groups) for user, groups in expected_views(stream).items()}
    assert {user: normalise(view) for user, view in views.items()} == expected


@settings(max_examples=200, deadline=None)
@given(events, st.integers(1, 10))
def test_batches_equal_event_by_event(stream: list[OrderPlaced], batch_size: int) -> None:
    one_by_one: dict[str, ItemsView] = {}
    for event in stream:
        one_by_one[event.user_id] = apply(one_by_one.get(event.user_id, empty_view()), event)
    batched: dict[str, ItemsView] = {}
    for start in range(0, len(stream), batch_size):
        chunk = stream[start : start + batch_size]
        result = apply_batch({e.user_id: batched.get(e.user_id) for e in chunk}, chunk)
        batched.update(result.views)
    assert batched == one_by_one


@settings(max_examples=100, deadline=None)
@given(events)
def test_events_of_one_user_apply_in_order(stream: list[OrderPlaced]) -> None:
    view = empty_view()
    for event in stream:
        if event.user_id == "u1":
            view = apply(view, event)
    firsts = list(dict.fromkeys(str(e.order_id) for e in stream if e.user_id == "u1"))
    assert view["order_ids"] == firsts
