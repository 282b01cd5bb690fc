"""The query service's ports: what its core needs from the outside, as small protocols.

Adapters: `store.RocksViewStore`, `dead_letters.KafkaDeadLetters`, a confluent_kafka Consumer
from `runner.kafka_consumer`. Fakes for unit tests live under tests/.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from query_service.projection import AppliedOrder, BatchResult, ItemsView


class ViewStore(Protocol):
    def views(self, user_ids: Sequence[str]) -> list[ItemsView | None]: ...

    def order(self, user_id: str, order_id: str) -> AppliedOrder | None: ...

    def applied_offsets(self) -> dict[int, int]:
        """The last applied offset of each partition that has any."""
        ...

    def commit(self, result: BatchResult, offsets: Mapping[int, int]) -> None:
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
