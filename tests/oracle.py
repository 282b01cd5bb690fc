"""The one expectation of a user's view: a plain fold of OrderPlaced events, written from the
rules as the README states them and sharing no code with the projection.

Views are compared in a neutral shape, `Groups`: group name -> `ExpectedGroup`, whose lines map
(sku, unit_price_minor) to (name, quantity, order_count). The adapters below bring what the
projection stores and what the query service answers into that shape; they are the one place
to change when either format does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from query_service.projection import ItemsView
from shared.events import OrderPlaced

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


def expected_views(events: Iterable[OrderPlaced]) -> dict[str, ExpectedView]:
    """Each user's view after `events` in order; an order_id seen before changes nothing."""
    views: dict[str, ExpectedView] = {}
    for event in events:
        view = views.setdefault(event.user_id, ExpectedView())
        order_id = str(event.order_id)
        if order_id in view.order_ids:
            continue
        view.order_ids.append(order_id)
        counted: set[tuple[str, int]] = set()
        for item in event.items:
            group = view.groups[group_of(item.unit_price_minor)]
            group.item_count += item.quantity
            group.total_minor += item.unit_price_minor * item.quantity
            key = (item.sku, item.unit_price_minor)
            name, quantity, orders = group.lines.get(key, (item.name, 0, 0))
            # An order listing the same line twice counts once towards that line's orders.
            group.lines[key] = (name, quantity + item.quantity, orders + (key not in counted))
            counted.add(key)
    return views


def stored_groups(view: ItemsView) -> Groups:
    """The projection's view of one user, in the oracle's shape."""
    return {
        name: ExpectedGroup(
            lines={
                (line["sku"], line["unit_price_minor"]): (
                    line["name"],
                    line["quantity"],
                    len(line["order_ids"]),
                )
                for line in group["lines"].values()
            },
            item_count=group["item_count"],
            total_minor=group["total_minor"],
        )
        for name, group in view["groups"].items()
    }


def stored_order_ids(view: ItemsView) -> list[str]:
    return list(view["order_ids"])


def served_groups(body: Mapping[str, Any]) -> Groups:
    """GET /users/{id}/items's JSON answer, in the oracle's shape."""
    return {
        name: ExpectedGroup(
            lines={
                (line["sku"], _pence(line["unit_price"])): (
                    line["name"],
                    line["quantity"],
                    len(line["order_ids"]),
                )
                for line in group["lines"]
            },
            item_count=group["item_count"],
            total_minor=_pence(group["total"]),
        )
        for name, group in body["groups"].items()
    }


def _pence(pounds: str) -> int:
    amount = Decimal(pounds) * 100
    assert amount == amount.to_integral_value(), pounds
    return int(amount)
