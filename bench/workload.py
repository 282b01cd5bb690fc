"""The events the benchmarks feed the system: OrderPlaced values with 1 to 5 items, spread over
users `<prefix>-0 .. <prefix>-(users-1)`, produced with the command service's producer settings.

Each order is drawn once as plain fields, then written as JSON by a template rather than by the
event model: about 9 s a million here instead of 17, with the random draws the larger share.
`modelled_values` builds the same draws with the model; the smoke test shows the bytes agree.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

from confluent_kafka import Producer
from pydantic import AwareDatetime, TypeAdapter

from shared.events import CURRENCY, EVENT_TYPE, LineItem, Money, OrderPlaced, encode, written_as
from shared.events import headers as event_headers
from shared.kafka import ensure_topics, orders_topic, producer_config
from shared.settings import KafkaSettings

PRICES_MINOR = (99, 250, 499, 500, 1299, 5000, 5001, 12900)
SKUS = 200

# (sku, name, unit_price_minor, quantity)
Item = tuple[str, str, int, int]


class Order(NamedTuple):
    event_id: uuid.UUID
    order_id: uuid.UUID
    user_id: str
    items: tuple[Item, ...]


def user_id(index: int, prefix: str = "bench") -> str:
    return f"{prefix}-{index}"


def draws(count: int, users: int, seed: int = 7, prefix: str = "bench") -> Iterator[Order]:
    """`count` orders: the first `users` one per user, then each for a user drawn at random."""
    rng = random.Random(seed)
    for i in range(count):
        user = user_id(i % users if i < users else rng.randrange(users), prefix)
        event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        order_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        items = tuple(
            (
                f"SKU-{rng.randrange(SKUS)}",
                f"Item {rng.randrange(97)}",
                rng.choice(PRICES_MINOR),
                rng.randint(1, 5),
            )
            for _ in range(rng.randint(1, 5))
        )
        yield Order(event_id, order_id, user, items)


def placed_at_text(placed_at: datetime) -> str:
    """The time as the event model writes it."""
    text: str = TypeAdapter(AwareDatetime).dump_python(placed_at, mode="json")
    return text


# Each version's template: the head up to the event id, what follows the user id, an item.
_TEMPLATES = {
    1: (
        ',"placed_at":"{placed}","currency":"' + CURRENCY + '","items":[',
        '{{"sku":"{0}","name":"{1}","unit_price_minor":{2},"quantity":{3}}}',
    ),
    2: (
        ',"placed_at":"{placed}","channel":"web","items":[',
        '{{"sku":"{0}","name":"{1}","unit_price":{{"amount_minor":{2},"currency":"'
        + CURRENCY
        + '"}},"quantity":{3}}}',
    ),
}


def order_values(
    count: int,
    users: int,
    seed: int = 7,
    prefix: str = "bench",
    placed_at: datetime | None = None,
    version: int = 1,
) -> Iterator[tuple[str, bytes]]:
    """(key, value) of each drawn order, written by the template of `version`."""
    placed = placed_at_text(placed_at or datetime.now(UTC))
    head = f'{{"event_type":"{EVENT_TYPE}","schema_version":{version},"event_id":"'
    after_user, item = _TEMPLATES[version]
    middle = '"' + after_user.format(placed=placed)
    # The draws' skus and names are plain ASCII: nothing in them needs escaping.
    for order in draws(count, users, seed, prefix):
        items = ",".join(item.format(*drawn) for drawn in order.items)
        value = (
            f'{head}{order.event_id}","order_id":"{order.order_id}","user_id":"{order.user_id}'
            f"{middle}{items}]}}"
        )
        yield order.user_id, value.encode()


def modelled_values(
    count: int,
    users: int,
    seed: int = 7,
    prefix: str = "bench",
    placed_at: datetime | None = None,
    version: int = 1,
) -> Iterator[tuple[str, bytes]]:
    """The same as `order_values`, each event built and encoded by the event model."""
    when = placed_at or datetime.now(UTC)
    for order in draws(count, users, seed, prefix):
        event = OrderPlaced(
            event_id=order.event_id,
            order_id=order.order_id,
            user_id=order.user_id,
            placed_at=when,
            channel="web",
            items=tuple(
                LineItem(
                    sku=sku,
                    name=name,
                    unit_price=Money(amount_minor=price, currency=CURRENCY),
                    quantity=quantity,
                )
                for sku, name, price, quantity in order.items
            ),
        )
        yield order.user_id, encode(written_as(event, version))


def interleave(*streams: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, bytes]]:
    """One record of each stream in turn, until the longest ends."""
    iterators = [iter(stream) for stream in streams]
    while iterators:
        for it in list(iterators):
            record = next(it, None)
            if record is None:
                iterators.remove(it)
            else:
                yield record


def produce(
    settings: KafkaSettings,
    values: Iterable[tuple[str, bytes]],
    label: str,
    compression: str = "none",
    traceparents: Iterator[bytes] | None = None,
) -> dict[int, int]:
    """Put `values` (key, value) on the orders topic, in batches compressed by `compression`
    (a librdkafka `compression.type`), each with the next of `traceparents` if given, as the
    command service writes them with tracing on; returns each partition's end offset."""
    ensure_topics(settings, [orders_topic(settings)])
    producer = Producer(
        {
            **producer_config(settings, "bench", delivery_timeout_ms=120_000),
            "linger.ms": 20,
            "queue.buffering.max.messages": 1_000_000,
            "compression.type": compression,
        }
    )
    ends: dict[int, int] = {}
    failures: list[Any] = []

    def landed(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(err)
        elif msg.offset() + 1 > ends.get(msg.partition(), 0):
            ends[msg.partition()] = msg.offset() + 1

    hdrs: list[tuple[str, str | bytes | None]] = list(event_headers())
    started = time.perf_counter()
    count = 0
    for count, (user, value) in enumerate(values, 1):
        record_headers = hdrs
        if traceparents is not None:
            record_headers = [*hdrs, ("traceparent", next(traceparents))]
        while True:
            try:
                producer.produce(
                    settings.orders_topic,
                    value,
                    key=user,
                    headers=record_headers,
                    on_delivery=landed,
                )
                break
            except BufferError:
                producer.poll(0.05)
        if count % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) or failures:
        raise RuntimeError(f"producing the workload failed: {failures[:3]}")
    print(
        f"  produced {count:,} events ({label}) in {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    return ends
