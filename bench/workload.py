"""The events the benchmarks feed the system: OrderPlaced values with 1 to 5 items, spread over
users `bench-0 .. bench-(users-1)`, produced with the command service's producer settings.

Each is built and encoded by the event model itself, so the workload cannot drift from the event's
shape: about 17 s for a million events here."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from shared.events import LineItem, OrderPlaced, encode, headers
from shared.kafka import ensure_topics, orders_topic, producer_config
from shared.settings import KafkaSettings


def user_id(index: int) -> str:
    return f"bench-{index}"


def order_values(count: int, users: int, seed: int = 7) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    placed_at = datetime.now(UTC)
    values = []
    for i in range(count):
        user = user_id(i % users if i < users else rng.randrange(users))
        event = OrderPlaced(
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            order_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            user_id=user,
            placed_at=placed_at,
            items=tuple(
                LineItem(
                    sku=f"SKU-{rng.randrange(200)}",
                    name=f"Item {rng.randrange(97)}",
                    unit_price_minor=rng.choice((99, 250, 499, 500, 1299, 5000, 5001, 12900)),
                    quantity=rng.randint(1, 5),
                )
                for _ in range(rng.randint(1, 5))
            ),
        )
        values.append((user, encode(event)))
    return values


def produce(settings: KafkaSettings, count: int, users: int) -> dict[int, int]:
    """Put `count` events on the orders topic; returns each partition's end offset."""
    ensure_topics(settings, [orders_topic(settings)])
    producer = Producer(
        {
            **producer_config(settings, "bench", delivery_timeout_ms=120_000),
            "linger.ms": 20,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    ends: dict[int, int] = {}
    failures: list[Any] = []

    def landed(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(err)
        elif msg.offset() + 1 > ends.get(msg.partition(), 0):
            ends[msg.partition()] = msg.offset() + 1

    hdrs: list[tuple[str, str | bytes | None]] = list(headers())
    started = time.perf_counter()
    for i, (user, value) in enumerate(order_values(count, users)):
        while True:
            try:
                producer.produce(
                    settings.orders_topic, value, key=user, headers=hdrs, on_delivery=landed
                )
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) or failures:
        raise RuntimeError(f"producing the workload failed: {failures[:3]}")
    print(
        f"  produced {count:,} events for {users:,} users in {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    return ends
