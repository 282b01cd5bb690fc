"""The items view of one user and how an OrderPlaced event changes it: pure, no infrastructure.

A view is plain dicts and lists (it round-trips through orjson as is); money is integer pence and
is formatted only at the API edge. Line dicts are never mutated once built, so a new view may
share them with the view it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypedDict

from shared.events import OrderPlaced
from shared.money import PriceGroup

GROUPS: Final = tuple(str(group.value) for group in PriceGroup)
_GROUP_KEY: Final = {group: str(group.value) for group in PriceGroup}


class Line(TypedDict):
    sku: str
    name: str
    unit_price_minor: int
    quantity: int
    order_ids: list[str]


class Group(TypedDict):
    # Keyed by `line_key(sku, unit_price_minor)`: one line per distinct (sku, unit price).
    lines: dict[str, Line]
    item_count: int
    total_minor: int


class ItemsView(TypedDict):
    groups: dict[str, Group]
    # Every order folded in, in the order applied: an order already held changes nothing.
    order_ids: list[str]


class OrderItem(TypedDict):
    sku: str
    name: str
    unit_price_minor: int
    quantity: int


class AppliedOrder(TypedDict):
    order_id: str
    user_id: str
    placed_at: str
    items: list[OrderItem]


def empty_view() -> ItemsView:
    return {
        "groups": {name: {"lines": {}, "item_count": 0, "total_minor": 0} for name in GROUPS},
        "order_ids": [],
    }


def line_key(sku: str, unit_price_minor: int) -> str:
    # The price is digits only, so the first ':' separates it: the key is injective.
    return f"{unit_price_minor}:{sku}"


def holds(view: ItemsView, order_id: str) -> bool:
    return order_id in view["order_ids"]


def apply(view: ItemsView, event: OrderPlaced) -> ItemsView:
    """The view after `event`; `view` itself is left unchanged."""
    order_id = str(event.order_id)
    if holds(view, order_id):
        return view
    working = _own(view)
    _fold(working, event, order_id)
    return working


def applied_order(event: OrderPlaced, order_id: str | None = None) -> AppliedOrder:
    return {
        "order_id": order_id if order_id is not None else str(event.order_id),
        "user_id": event.user_id,
        "placed_at": event.placed_at.isoformat(),
        "items": [
            {
                "sku": item.sku,
                "name": item.name,
                "unit_price_minor": item.unit_price_minor,
                "quantity": item.quantity,
            }
            for item in event.items
        ],
    }


@dataclass
class BatchResult:
    """What a batch changed: the new view of each user it changed, and the orders it applied."""

    views: dict[str, ItemsView] = field(default_factory=dict)
    orders: list[AppliedOrder] = field(default_factory=list)
    duplicates: int = 0


def apply_batch(
    current: Mapping[str, ItemsView | None], events: Iterable[OrderPlaced]
) -> BatchResult:
    """Fold `events` in order into the users' `current` views (None: no view yet).

    Equal to calling `apply` event by event, but each user's view is copied once per batch
    rather than once per event. `current` must hold every user the events name.
    """
    result = BatchResult()
    working: dict[str, tuple[ItemsView, set[str]]] = {}
    for event in events:
        user_id = event.user_id
        order_id = str(event.order_id)
        entry = working.get(user_id)
        if entry is None:
            base = current[user_id]
            view = _own(base if base is not None else empty_view())
            entry = working[user_id] = (view, set(view["order_ids"]))
        view, known = entry
        if order_id in known:
            result.duplicates += 1
            continue
        known.add(order_id)
        _fold(view, event, order_id)
        result.views[user_id] = view
        result.orders.append(applied_order(event, order_id))
    return result


def _own(view: ItemsView) -> ItemsView:
    """A copy whose containers may be changed in place; its line dicts are shared, never mutated."""
    return {
        "groups": {
            name: {
                "lines": dict(group["lines"]),
                "item_count": group["item_count"],
                "total_minor": group["total_minor"],
            }
            for name, group in view["groups"].items()
        },
        "order_ids": list(view["order_ids"]),
    }


def _fold(working: ItemsView, event: OrderPlaced, order_id: str) -> None:
    groups = working["groups"]
    for item in event.items:
        price = item.unit_price_minor
        quantity = item.quantity
        group = groups[_GROUP_KEY[PriceGroup.of(price)]]
        group["item_count"] += quantity
        group["total_minor"] += price * quantity
        lines = group["lines"]
        key = line_key(item.sku, price)
        line = lines.get(key)
        if line is None:
            lines[key] = {
                "sku": item.sku,
                "name": item.name,
                "unit_price_minor": price,
                "quantity": quantity,
                "order_ids": [order_id],
            }
        else:
            # One order may list the same (sku, price) twice: its id is kept once per line.
            order_ids = line["order_ids"]
            if order_ids[-1] != order_id:
                order_ids = [*order_ids, order_id]
            lines[key] = {**line, "quantity": line["quantity"] + quantity, "order_ids": order_ids}
    working["order_ids"].append(order_id)
