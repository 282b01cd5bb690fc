"""OrderPlaced version 1 (the first release's, written until COMMAND_EVENT_VERSION=2): one
currency for the order, each item's price a whole number of its minor unit. Frozen forever:
events of this shape stay in the log, and upcasting.py turns them into the newest shape. The
classes keep their first names (elsewhere: LineItemV1, OrderPlacedV1), and so their schema."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.events.fields import (
    CURRENCY,
    EVENT_TYPE,
    MAX_ITEMS,
    AmountMinor,
    Currency,
    ItemName,
    Quantity,
    Sku,
    UserId,
)


class LineItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: Sku
    name: ItemName
    unit_price_minor: AmountMinor
    quantity: Quantity


class OrderPlaced(BaseModel):
    """A user placed an order. Immutable; `order_id` identifies the order across retries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: Literal["OrderPlaced"] = EVENT_TYPE
    schema_version: Literal[1] = 1
    event_id: UUID
    order_id: UUID
    user_id: UserId
    placed_at: AwareDatetime
    currency: Currency = CURRENCY
    items: Annotated[tuple[LineItem, ...], Field(min_length=1, max_length=MAX_ITEMS)]
