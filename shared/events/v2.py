"""OrderPlaced version 2, the newest: each item's price a money object of its own, and the
channel the order came through. The fold and every answer see this shape only."""

from __future__ import annotations

from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.events.fields import (
    EVENT_TYPE,
    MAX_ITEMS,
    AmountMinor,
    Currency,
    ItemName,
    Quantity,
    Sku,
    UserId,
)
from shared.money import PriceGroup

Channel = Literal["web", "app", "api"]
CHANNELS: Final[tuple[Channel, ...]] = ("web", "app", "api")


class Money(BaseModel):
    """An amount in the currency's minor unit (pence for GBP)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount_minor: AmountMinor
    currency: Currency


class LineItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: Sku
    name: ItemName
    unit_price: Money
    quantity: Quantity

    @property
    def price_group(self) -> PriceGroup:
        return PriceGroup.of(self.unit_price.amount_minor)


class OrderPlaced(BaseModel):
    """A user placed an order. Immutable; `order_id` identifies the order across retries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: Literal["OrderPlaced"] = EVENT_TYPE
    schema_version: Literal[2] = 2
    event_id: UUID
    order_id: UUID
    user_id: UserId
    placed_at: AwareDatetime
    channel: Channel
    items: Annotated[tuple[LineItem, ...], Field(min_length=1, max_length=MAX_ITEMS)]
