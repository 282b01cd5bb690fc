"""OrderPlaced events for tests: one order from (sku, unit_price_minor, quantity) triples, and
events as the query service's ingest hands them to the projection."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from query_service.view.decoding import Placed, placed
from shared.events import (
    CURRENCY,
    AnyOrderPlaced,
    LineItem,
    Money,
    OrderPlaced,
    OrderPlacedV1,
    encode,
    upcast,
    written_as,
)


def order(
    user_id: str,
    *items: tuple[str, int, int],
    order_id: uuid.UUID | None = None,
    placed_at: datetime | None = None,
) -> OrderPlaced:
    """An order in the newest shape (placed on the web)."""
    return OrderPlaced(
        event_id=uuid.uuid4(),
        order_id=order_id or uuid.uuid4(),
        user_id=user_id,
        placed_at=placed_at or datetime.now(UTC),
        channel="web",
        items=tuple(
            LineItem(
                sku=sku,
                name=f"Item {sku}",
                unit_price=Money(amount_minor=price, currency=CURRENCY),
                quantity=qty,
            )
            for sku, price, qty in items
        ),
    )


def order_v1(
    user_id: str,
    *items: tuple[str, int, int],
    order_id: uuid.UUID | None = None,
    placed_at: datetime | None = None,
) -> OrderPlacedV1:
    """The same order as version 1 writes it."""
    written = written_as(order(user_id, *items, order_id=order_id, placed_at=placed_at), 1)
    assert isinstance(written, OrderPlacedV1)
    return written


def random_order(
    rng: random.Random, user_id: str, order_id: uuid.UUID | None = None
) -> OrderPlaced:
    """1 to 5 items over 40 skus, with prices on and around every group boundary."""
    items = [
        (
            f"SKU-{rng.randrange(40)}",
            rng.choice(
                [
                    rng.randint(1, 499),
                    rng.randint(500, 5000),
                    rng.randint(5001, 50_000),
                    499,
                    500,
                    5000,
                    5001,
                ]
            ),
            rng.randint(1, 5),
        )
        for _ in range(rng.randint(1, 5))
    ]
    return order(user_id, *items, order_id=order_id or uuid.UUID(int=rng.getrandbits(128)))


def as_ingested(events: Iterable[AnyOrderPlaced]) -> list[Placed]:
    """Each event as the ingest hands it to the fold: the newest shape, the record as written."""
    return [placed(upcast(event), encode(event)) for event in events]
