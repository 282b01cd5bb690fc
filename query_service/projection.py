"""The items view of one user and how an OrderPlaced event changes it: pure, no infrastructure.

A view is plain dicts and lists (it round-trips through orjson as is); money is integer pence and
is formatted only at the API edge. `apply` and `apply_batch` leave their input views unchanged;
`fold_batch`, the ingest's hot path, changes views it owns in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypedDict

from query_service.decoding import Placed, PlacedItem, placed
from shared.events import OrderPlaced, decode, encode
from shared.money import AFFORDABLE_FROM_MINOR, AFFORDABLE_UP_TO_MINOR, PriceGroup

GROUPS: Final = tuple(str(group.value) for group in PriceGroup)
_CHEAP: Final = str(PriceGroup.CHEAP.value)
_AFFORDABLE: Final = str(PriceGroup.AFFORDABLE.value)
_EXPENSIVE: Final = str(PriceGroup.EXPENSIVE.value)


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
    _fold(working, event.user_id, order_id, _items(event))
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
    """What a batch changed: the new view of each user it changed, and the events it applied."""

    views: dict[str, ItemsView] = field(default_factory=dict)
    applied: list[Placed] = field(default_factory=list)
    duplicates: int = 0

    @property
    def orders(self) -> list[AppliedOrder]:
        return [applied_order(decode(event.value), event.order_id) for event in self.applied]


def apply_batch(
    current: Mapping[str, ItemsView | None], events: Iterable[OrderPlaced]
) -> BatchResult:
    """Fold `events` in order into the users' `current` views (None: no view yet).

    Equal to calling `apply` event by event; `current` is left unchanged and must hold every
    user the events name.
    """
    owned = {
        user: _own(view) if view is not None else empty_view() for user, view in current.items()
    }
    return fold_batch(owned, (placed(event, encode(event)) for event in events))


def fold_batch(views: dict[str, ItemsView], events: Iterable[Placed]) -> BatchResult:
    """`apply_batch` on views the caller owns: they are changed in place, line dicts included.

    `views` must hold every user the events name (`empty_view()` for a user with none).
    """
    result = BatchResult()
    changed = result.views
    applied = result.applied
    known: dict[str, set[str]] = {}
    duplicates = 0
    for event in events:
        user_id, order_id, items, _ = event
        seen = known.get(user_id)
        if seen is None:
            seen = known[user_id] = set(views[user_id]["order_ids"])
        if order_id in seen:
            duplicates += 1
            continue
        seen.add(order_id)
        view = views[user_id]
        _fold(view, user_id, order_id, items)
        changed[user_id] = view
        applied.append(event)
    result.duplicates = duplicates
    return result


def _own(view: ItemsView) -> ItemsView:
    """A deep copy, which the in-place fold may change without touching `view`."""
    return {
        "groups": {
            name: {
                "lines": {
                    key: {**line, "order_ids": list(line["order_ids"])}
                    for key, line in group["lines"].items()
                },
                "item_count": group["item_count"],
                "total_minor": group["total_minor"],
            }
            for name, group in view["groups"].items()
        },
        "order_ids": list(view["order_ids"]),
    }


def _items(event: OrderPlaced) -> tuple[PlacedItem, ...]:
    return tuple((i.sku, i.name, i.unit_price_minor, i.quantity) for i in event.items)


def _fold(view: ItemsView, user_id: str, order_id: str, items: tuple[PlacedItem, ...]) -> None:
    groups = view["groups"]
    for sku, name, price, quantity in items:
        group = groups[_group_of(price)]
        group["item_count"] += quantity
        group["total_minor"] += price * quantity
        lines = group["lines"]
        key = f"{price}:{sku}"  # line_key, inlined: this runs once per item of every event
        line = lines.get(key)
        if line is None:
            lines[key] = {
                "sku": sku,
                "name": name,
                "unit_price_minor": price,
                "quantity": quantity,
                "order_ids": [order_id],
            }
        else:
            line["quantity"] += quantity
            # One order may list the same (sku, price) twice: its id is kept once per line.
            order_ids = line["order_ids"]
            if order_ids[-1] != order_id:
                order_ids.append(order_id)
    view["order_ids"].append(order_id)


def _group_of(unit_price_minor: int) -> str:
    # PriceGroup.of's rule without its enum: a fifth of the cost, run once per item.
    if unit_price_minor < AFFORDABLE_FROM_MINOR:
        return _CHEAP
    return _AFFORDABLE if unit_price_minor <= AFFORDABLE_UP_TO_MINOR else _EXPENSIVE
