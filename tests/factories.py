"""OrderPlaced events for tests: one order from (sku, unit_price_minor, quantity) triples, and
events as the query service's ingest hands them to the projection."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from query_service.view.decoding import Placed, placed
from shared.events import LineItem, OrderPlaced, encode


def order(
    user_id: str,
    *items: tuple[str, int, int],
    order_id: uuid.UUID | None = None,
    placed_at: datetime | None = None,
) -> OrderPlaced:
    return OrderPlaced(
        event_id=uuid.uuid4(),
        order_id=order_id or uuid.uuid4(),
        user_id=user_id,
        placed_at=placed_at or datetime.now(UTC),
        items=tuple(
            LineItem(sku=sku, name=f"Item {sku}", unit_price_minor=price, quantity=qty)
            for sku, price, qty in items
        ),
    )


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


def as_ingested(events: Iterable[OrderPlaced]) -> list[Placed]:
    return [placed(event, encode(event)) for event in events]
