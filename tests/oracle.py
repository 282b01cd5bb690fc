"""The one expectation of a user's view: a plain fold of OrderPlaced events, written from the
rules as the README states them and sharing no code with the projection.

Views are compared in a neutral shape, `Groups`: group name -> `ExpectedGroup`, whose lines map
(sku, unit_price_minor) to (name, quantity, order_count). The adapters below bring what the
projection stores and what the query service answers into that shape; they are the one place
to change when either format does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from query_service.view.layout import ViewReader
from shared.events import AnyOrderPlaced, upcast

# (sku, unit_price_minor) -> (name, quantity, order_count)
Lines = dict[tuple[str, int], tuple[str, int, int]]


@dataclass
class ExpectedGroup:
    lines: Lines = field(default_factory=dict)
    item_count: int = 0
    total_minor: int = 0


Groups = dict[str, ExpectedGroup]


@dataclass
class ExpectedView:
    groups: Groups = field(default_factory=lambda: {name: ExpectedGroup() for name in GROUP_NAMES})
    # Every order applied, in the order first seen.
    order_ids: list[str] = field(default_factory=list)


GROUP_NAMES = ("cheap", "affordable", "expensive")


def group_of(unit_price_minor: int) -> str:
    # Written out from the README on purpose: the oracle must not share the code it checks.
    if unit_price_minor < 500:
        return "cheap"
    if unit_price_minor <= 5000:
        return "affordable"
    return "expensive"


def expected_views(events: Iterable[AnyOrderPlaced]) -> dict[str, ExpectedView]:
    """Each user's view after `events` in order; an order_id seen before changes nothing."""
    views: dict[str, ExpectedView] = {}
    for written in events:
        event = upcast(written)
        view = views.setdefault(event.user_id, ExpectedView())
        order_id = str(event.order_id)
        if order_id in view.order_ids:
            continue
        view.order_ids.append(order_id)
        counted: set[tuple[str, int]] = set()
        for item in event.items:
            price = item.unit_price.amount_minor
            group = view.groups[group_of(price)]
            group.item_count += item.quantity
            group.total_minor += price * item.quantity
            key = (item.sku, price)
            name, quantity, orders = group.lines.get(key, (item.name, 0, 0))
            # An order listing the same line twice counts once towards that line's orders.
            group.lines[key] = (name, quantity + item.quantity, orders + (key not in counted))
            counted.add(key)
    return views


def stored_groups(reader: ViewReader, user_id: str, page_size: int = 7) -> Groups:
    """What the store holds for one user, paged through `page_size` lines at a time."""
    summaries = reader.summaries(user_id, GROUP_NAMES)
    groups: Groups = {}
    for name in GROUP_NAMES:
        summary = summaries[name]
        lines: Lines = {}
        after: tuple[str, int] | None = None
        while True:
            page = reader.lines(user_id, name, after, page_size)
            for line_id, line in page:
                key = (line_id.sku, line_id.unit_price_minor)
                assert key not in lines, f"{key} listed twice"
                lines[key] = (line.name, line.quantity, line.order_count)
            if len(page) < page_size:
                break
            after = (page[-1][0].sku, page[-1][0].unit_price_minor)
        if summary is not None:
            assert summary.line_count == len(lines), (name, summary, len(lines))
        groups[name] = ExpectedGroup(
            lines=lines,
            item_count=0 if summary is None else summary.item_count,
            total_minor=0 if summary is None else summary.total_minor,
        )
    return groups


def stored_order_ids(reader: ViewReader, user_id: str, page_size: int = 5) -> list[str]:
    """The user's orders as the store lists them (newest first), oldest first."""
    found: list[str] = []
    before: int | None = None
    while True:
        page = reader.newest_orders(user_id, before, page_size)
        found += [orjson.loads(value)["order_id"] for _, value in page]
        if len(page) < page_size:
            return found[::-1]
        before = page[-1][0]


def served_groups(get: Callable[[dict[str, Any]], Mapping[str, Any]]) -> Groups:
    """GET /users/{id}/items's answers, following every group's cursor, in the oracle's shape.

    `get(params)` returns the JSON answer to GET /users/{id}/items with those query parameters.
    """
    first = get({})
    groups: Groups = {}
    for name, group in first["groups"].items():
        lines: Lines = {}
        page = group
        while True:
            for line in page["lines"]:
                key = (line["sku"], _pence(line["unit_price"]))
                assert key not in lines, f"{key} served twice"
                lines[key] = (line["name"], line["quantity"], line["order_count"])
            if page["next_cursor"] is None:
                break
            page = get({"group": name, "cursor": page["next_cursor"]})["groups"][name]
        assert group["line_count"] == len(lines), (name, group["line_count"], len(lines))
        groups[name] = ExpectedGroup(
            lines=lines, item_count=group["item_count"], total_minor=_pence(group["total"])
        )
    return groups


def _pence(pounds: str) -> int:
    amount = Decimal(pounds) * 100
    assert amount == amount.to_integral_value(), pounds
    return int(amount)
