"""The query service's ports: what its core needs from the outside, as small protocols.

Adapters: `store.RocksViewStore`, `dead_letters.KafkaDeadLetters`, a confluent_kafka Consumer
from `runner.kafka_consumer`. Fakes for unit tests live under tests/.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from query_service.cluster import ClusterView, Member
from query_service.layout import ViewReader
from query_service.projection import Changes, Line, LineId, Summary, SummaryId
from query_service.settings import QuerySettings


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

    def bind_topic(self, topic_id: str) -> None:
        """Refuse (StateDirError) a store built from another topic of the same name."""
        ...

    def applied_offsets(self) -> dict[int, int]:
        """The last applied offset of each partition that has any."""
        ...

    def commit(self, changes: Changes, offsets: Mapping[int, int]) -> None:
        """Store the batch's changes and the partitions' new offsets, all or nothing."""
        ...

    def close(self) -> None: ...


class ViewStores(Protocol):
    """The view's stores, one per partition; opened when the instance takes the partition up."""

    def open(self, partition: int) -> ViewStore: ...

    def get(self, partition: int) -> ViewStore | None:
        """The partition's store if it is open."""
        ...

    def close_partition(self, partition: int) -> None: ...

    def drop(self, partition: int) -> None:
        """Close the partition's store and delete its state."""
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


class Progress(Protocol):
    """What the runner thread tells the read side, in the order it happens."""

    def applied(self, offsets: Mapping[int, int], changes: Changes) -> None:
        """A batch is durable: the partitions' new last applied offsets, and what changed."""
        ...

    def taken(self, partition: int, applied: int) -> None:
        """This instance took the partition up; its copy has applied `applied` (-1: nothing)."""
        ...

    def released(self, partition: int) -> None:
        """This instance let the partition go; nothing may be read from it any more."""
        ...


class ClusterMembership(Protocol):
    """Who the instances are and what they hold; places this instance's runner."""

    def start(self) -> None: ...

    def stop(self) -> None:
        """Leave the cluster cleanly, so that the others take over at once."""
        ...

    def view(self) -> ClusterView: ...

    @property
    def failure(self) -> BaseException | None:
        """Why the membership stopped working for good, if it has."""
        ...


# Builds the membership adapter from the settings, this instance's own state and its runner.
MembershipFactory = Callable[[QuerySettings, Callable[[], Member], Any], ClusterMembership]
# Builds the view's consumer (a confluent_kafka Consumer, or a fake with the same methods).
ConsumerFactory = Callable[[], Any]
# Creates the orders and dead-letter topics if they are missing and returns the orders topic's
# id; raises while Kafka is away.
TopicProvisioner = Callable[[], str]
