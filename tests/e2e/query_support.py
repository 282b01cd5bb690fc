"""Producing OrderPlaced events as the command service does, and reading the query service."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
from confluent_kafka import Producer

from shared.events import LATEST_VERSION, AnyOrderPlaced, encode, headers
from shared.kafka import ensure_topics, orders_topic, producer_config
from shared.settings import KafkaSettings
from tests.support import operator_headers


class OrderProducer:
    """The command service's producer configuration: idempotent, murmur2 by user_id key."""

    def __init__(self, kafka_bootstrap: str, topic: str) -> None:
        settings = KafkaSettings(kafka_bootstrap_servers=kafka_bootstrap, orders_topic=topic)
        ensure_topics(settings, [orders_topic(settings)])
        self.topic = topic
        self._producer = Producer(
            {
                **producer_config(settings, "test-producer", delivery_timeout_ms=30_000),
                "linger.ms": 5,
            }
        )
        self.landed: list[tuple[int, int]] = []

    def send(self, event: AnyOrderPlaced) -> None:
        self.send_raw(encode(event), event.user_id, event.schema_version)

    def send_raw(self, value: bytes, key: str | None, version: int = LATEST_VERSION) -> None:
        def delivered(err: Any, msg: Any) -> None:
            assert err is None, err
            self.landed.append((msg.partition(), msg.offset()))

        while True:
            try:
                self._producer.produce(
                    self.topic, value, key=key, headers=headers(version), on_delivery=delivered
                )
                return
            except BufferError:
                self._producer.poll(0.1)

    def place(self, event: AnyOrderPlaced) -> str:
        """Produce one event and wait for its ack; its consistency token, as the command side."""
        self.send(event)
        return self.flush()

    def flush(self) -> str:
        assert self._producer.flush(30) == 0
        partition, offset = self.landed[-1]
        return f"v1:{partition}:{offset}"


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", headers=operator_headers(), timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}")


def sse_events(response: httpx.Response) -> Iterator[dict[str, str]]:
    """Parse a text/event-stream into events (field -> value), skipping comments (pings)."""
    event: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if event:
                yield event
                event = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        event[field] = value.removeprefix(" ")
