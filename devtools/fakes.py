"""In-memory stand-ins for the services' ports, and a consumed record as the query side's consumer
loop sees one (tests and benchmarks apply records without Kafka)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from command_service.publisher import Delivery, Headers, Readiness


@dataclass
class InMemoryPublisher:
    """Satisfies command_service's Publisher port without Kafka: each publish lands at once.

    `failure` makes the next publishes raise it; `keep` False forgets the records (a benchmark's
    millions of them), counting offsets only.
    """

    partition: int = 0
    failure: Exception | None = None
    ready: bool = True
    keep: bool = True
    records: list[tuple[bytes, bytes, Headers]] = field(default_factory=list)
    published: int = 0
    started: bool = False
    closed: bool = False

    async def start(self) -> None:
        self.started = True

    async def publish(self, key: bytes, value: bytes, headers: Headers) -> Delivery:
        if self.failure is not None:
            raise self.failure
        if self.keep:
            self.records.append((key, value, headers))
        self.published += 1
        return Delivery(partition=self.partition, offset=self.published - 1)

    async def readiness(self) -> Readiness:
        return Readiness(self.ready, "in memory, no Kafka")

    async def close(self) -> None:
        self.closed = True


@dataclass(frozen=True)
class FakeMessage:
    """A record as confluent_kafka's Message shows it to the consumer loop."""

    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None
    _key: bytes | None = None
    # (TIMESTAMP_CREATE_TIME, ms): when it was produced, as the producer's clock said.
    _timestamp: tuple[int, int] = field(default_factory=lambda: (1, int(time.time() * 1000)))
    _headers: list[tuple[str, bytes]] | None = None

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers
