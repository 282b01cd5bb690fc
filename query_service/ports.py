"""The query service's ports: what its core needs from the outside, as small protocols, and the
immutable values its threads hand each other.

Adapters: `store.rocks` (the partition stores), `ingest.dead_letters.KafkaDeadLetters`, a
confluent_kafka Consumer from `ingest.kafka`, `cluster.membership.Membership`. Fakes for unit
tests live in tests/query_fakes.py and implement the same protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, TopicPartition

from query_service.cluster.model import ClusterView, Member
from query_service.settings import QuerySettings
from query_service.view.decoding import Placed
from query_service.view.layout import ViewReader
from query_service.view.projection import Changes, Line, LineId, Summary, SummaryId


class PartitionStore(Protocol):
    """One partition's view: its records and the offset they reflect."""

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

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """Point reads of the live state (values, None where absent): no state is fixed."""
        ...

    def bind_topic(self, topic_id: str) -> None:
        """Refuse (StateDirError) a store built from another topic of the same name."""
        ...

    def applied_offsets(self) -> dict[int, int]:
        """The last applied offset of each partition that has any (here: its own, if any)."""
        ...

    def commit(self, changes: Changes, offsets: Mapping[int, int]) -> None:
        """Store the batch's changes and the partition's new offset, all or nothing."""
        ...

    def apply(self, events: Sequence[Placed], offsets: Mapping[int, int]) -> Changes:
        """Fold the events whose orders the view does not hold yet (the rest are counted as
        duplicates) and commit the changes with `offsets`, all or nothing."""
        ...

    def close(self) -> None: ...


class PartitionStores(Protocol):
    """The view's stores, one per partition; opened when the instance takes the partition up.
    Opened and dropped by the consumer thread; `get` is also called from the event loop."""

    def open(self, partition: int) -> PartitionStore: ...

    def get(self, partition: int) -> PartitionStore | None:
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


@dataclass(frozen=True)
class Origins:
    """Where a batch's changes came from, for what the read side reports of them: when each
    partition's oldest event of the batch was produced (ms), and the trace context of each
    user's traced orders (empty with tracing off)."""

    produced_ms: Mapping[int, int] = field(default_factory=dict)
    traces: Mapping[str, Sequence[Mapping[str, str]]] = field(default_factory=dict)


NO_ORIGINS: Origins = Origins()


class Progress(Protocol):
    """What the runner thread tells the read side, in the order it happens."""

    def applied(self, offsets: Mapping[int, int], changes: Changes, origins: Origins) -> None:
        """A batch is durable: the partitions' new last applied offsets, what changed, and
        where it came from."""
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

    def fresh(self, partition: int, applied: int) -> bool:
        """Whether this instance's copy of `partition`, having applied `applied`, may answer a
        read without a token: under a current lease (cluster.model.Lease), whose log end it has
        reached. Otherwise such reads go to another copy, or wait."""
        ...

    @property
    def failure(self) -> BaseException | None:
        """Why the membership stopped working for good, if it has."""
        ...


@dataclass(frozen=True, slots=True)
class Paused:
    """A partition stopped at an event newer than this code: nothing from `offset` on is
    applied until the service is upgraded (then it resumes there, nothing lost)."""

    offset: int
    reason: str


@dataclass(frozen=True, slots=True)
class HeldPartition:
    """A partition this instance has taken up: caught up once it reached `catch_up_to`."""

    catch_up_to: int
    applied: int = -1
    ready: bool = False
    lag: int = 0
    paused: Paused | None = None


@dataclass(frozen=True, slots=True)
class Holding:
    """What this instance holds: built on each read from `partitions` as the consumer thread
    last swapped them in whole and `wanted` as the membership thread last placed it.

    Read by the event loop, the ops listener and the membership thread. Never changed in place.
    """

    partitions: Mapping[int, HeldPartition] = field(default_factory=dict)
    # What placement asks for; None until membership has placed this instance once.
    wanted: frozenset[int] | None = None
    max_lag: int = 0
    # Partitions let go but kept on disk for QUERY_DROP_GRACE_S: their last applied offsets.
    kept: Mapping[int, int] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Placed, and caught up with every partition it holds."""
        return (
            self.wanted is not None
            and set(self.partitions) == set(self.wanted)
            and all(
                state.ready and state.paused is None and state.lag <= self.max_lag
                for state in self.partitions.values()
            )
        )


@dataclass(frozen=True, slots=True)
class HandoffProgress:
    """A checkpoint being received: from whom, how much so far, since when (monotonic s)."""

    source: str
    received_bytes: int
    started: float


class Handoff(Protocol):
    """Hands a partition over from another instance's caught-up copy (the consumer thread)."""

    def receive(self, partition: int, applied: int, end: int, topic_id: str) -> bool:
        """Put a handed-over copy of `partition` in place of its state (closed) if one is
        worth asking for and arrives intact; False: build it from the log."""
        ...

    def in_progress(self) -> Mapping[int, HandoffProgress]:
        """The transfers under way (any thread: swapped whole)."""
        ...


class Readiness(Protocol):
    """How the instance is doing, as the HTTP edge and the heartbeat see it (any thread)."""

    def holding(self) -> Holding: ...

    def failure(self) -> BaseException | None:
        """Why a part of the instance (its consumer or membership thread) stopped for good."""
        ...


class Placeable(Protocol):
    """What membership places: told the partitions to hold, asked how many the topic has."""

    def place(self, partitions: frozenset[int]) -> None: ...

    @property
    def partitions(self) -> int | None: ...


class ConsumedRecord(Protocol):
    """A consumed record as the consumer thread reads it: confluent_kafka's Message (and
    devtools.fakes.FakeMessage)."""

    def error(self) -> KafkaError | None: ...

    def topic(self) -> str | None: ...

    def partition(self) -> int | None: ...

    def offset(self) -> int | None: ...

    def key(self) -> bytes | None: ...

    def value(self) -> bytes | None: ...


class Consumer(Protocol):
    """The confluent_kafka Consumer methods the consumer thread calls, as its stubs type them
    (tests/query_fakes.FakeConsumer implements the same; `make typecheck` checks it does)."""

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]: ...

    def incremental_assign(self, partitions: list[TopicPartition]) -> None: ...

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None: ...

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...

    def pause(self, partitions: list[TopicPartition]) -> None: ...

    def seek(self, partition: TopicPartition) -> None: ...

    def consume(self, num_messages: int = 1, timeout: float = -1) -> Sequence[ConsumedRecord]: ...

    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[True] = ...
    ) -> None: ...

    def close(self) -> None: ...


# Builds the membership adapter from the settings, this instance's own state and what it places.
MembershipFactory = Callable[[QuerySettings, Callable[[], Member], Placeable], ClusterMembership]
# Builds the view's consumer.
ConsumerFactory = Callable[[], Consumer]
# Creates the orders and dead-letter topics if they are missing and returns the orders topic's
# id; raises while Kafka is away.
TopicProvisioner = Callable[[], str]
