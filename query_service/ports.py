"""The query service's ports: what its core needs from the outside, as small protocols.

Adapters: `store.RocksViewStore`, `dead_letters.KafkaDeadLetters`, a confluent_kafka Consumer
from `runner.kafka_consumer`. Fakes for unit tests live under tests/.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from query_service.layout import ViewReader
from query_service.projection import Changes, Line, LineId, Summary, SummaryId


class ViewStore(Protocol):
    def known_orders(self, orders: Sequence[tuple[str, str]]) -> list[bool]:
        """Which of (user_id, order_id) the view already holds."""
        ...

    def records(
        self, lines: Sequence[LineId], summaries: Sequence[SummaryId], users: Sequence[str]
    ) -> tuple[dict[LineId, Line | None], dict[SummaryId, Summary | None], dict[str, int]]:
        """The current value of each record a fold reads, in one batched read."""
        ...

    def reader(self) -> ViewReader:
        """Reads at the state of now, unmoved by later commits."""
        ...

    def applied_offsets(self) -> dict[int, int]:
        """The last applied offset of each partition that has any."""
        ...

    def commit(self, changes: Changes, offsets: Mapping[int, int]) -> None:
        """Store the batch's changes and the partitions' new offsets, all or nothing."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    kind: str
    message: str


class DeadLetters(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Return once the broker holds every letter; raise DeadLetterFailed otherwise."""
        ...

    def close(self) -> None: ...


# Builds the view's consumer (a confluent_kafka Consumer, or a fake with the same methods).
ConsumerFactory = Callable[[], Any]
# Creates the orders and dead-letter topics if they are missing; raises while Kafka is away.
TopicProvisioner = Callable[[], None]
