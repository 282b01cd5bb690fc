"""Every version of OrderPlaced to the newest, one pure step per version: the only place that
knows how an old shape maps to a new one. Adding v3: a step from v2, and LATEST moves on.

`written_as` goes the other way, for a writer still told to write an older version during a
rolling upgrade (readers first, then writers): it refuses what the older shape cannot hold.
"""

from __future__ import annotations

from typing import Final

from shared.events.v1 import LineItem as LineItemV1
from shared.events.v1 import OrderPlaced as OrderPlacedV1
from shared.events.v2 import Channel, LineItem, Money, OrderPlaced

# Version 1 had no channel: every v1 order came through the command API (the web page posts to
# it too), so a v1 event reads as `api`.
V1_CHANNEL: Final[Channel] = "api"

AnyOrderPlaced = OrderPlacedV1 | OrderPlaced


def v1_to_v2(event: OrderPlacedV1) -> OrderPlaced:
    return OrderPlaced(
        event_id=event.event_id,
        order_id=event.order_id,
        user_id=event.user_id,
        placed_at=event.placed_at,
        channel=V1_CHANNEL,
        items=tuple(
            LineItem(
                sku=item.sku,
                name=item.name,
                unit_price=Money(amount_minor=item.unit_price_minor, currency=event.currency),
                quantity=item.quantity,
            )
            for item in event.items
        ),
    )


def upcast(event: AnyOrderPlaced) -> OrderPlaced:
    """Any readable version in the newest shape."""
    if isinstance(event, OrderPlacedV1):
        return v1_to_v2(event)
    return event


def written_as(event: OrderPlaced, version: int) -> AnyOrderPlaced:
    """The event in the shape of `version`, for a writer not yet told to write the newest."""
    if version == event.schema_version:
        return event
    if version == 1:
        currencies = {item.unit_price.currency for item in event.items}
        if len(currencies) != 1:
            raise ValueError("a version 1 event holds one currency for the whole order")
        return OrderPlacedV1(
            event_id=event.event_id,
            order_id=event.order_id,
            user_id=event.user_id,
            placed_at=event.placed_at,
            currency=currencies.pop(),
            items=tuple(
                LineItemV1(
                    sku=item.sku,
                    name=item.name,
                    unit_price_minor=item.unit_price.amount_minor,
                    quantity=item.quantity,
                )
                for item in event.items
            ),
        )
    raise ValueError(f"schema_version {version} cannot be written")
