"""In-memory adapters for the query service's ports: partition stores, a dead-letter sink, a
consumer over a list of records and a one-instance membership, so its core and routes run in unit
tests without Kafka. `make typecheck` checks that each satisfies its port.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Literal

from confluent_kafka import TopicPartition
from fastapi import FastAPI

from devtools.fakes import FakeMessage
from query_service.app import create_app
from query_service.cluster.model import ClusterView, Member
from query_service.exceptions import DeadLetterFailed
from query_service.ports import (
    Consumer,
    DeadLetter,
    MembershipFactory,
    PartitionStores,
    Placeable,
)
from query_service.settings import QuerySettings
from query_service.view.layout import KeyValuePartitionStore, ViewReader
from shared.events import AnyOrderPlaced, encode


class _DictReader:
    """Reads over a copy of the data: what RocksDB's snapshot gives."""

    def __init__(self, data: dict[bytes, bytes]) -> None:
        self._data = dict(data)
        self._keys = sorted(self._data)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return [self._data.get(key) for key in keys]

    def scan(self, start: bytes, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        keys = [k for k in self._keys if k >= start and k.startswith(prefix)][:limit]
        return [(key, self._data[key]) for key in keys]


class MemoryPartitionStore(KeyValuePartitionStore):
    """The same keys and bytes as RocksDB, in a dict; a write is atomic as a dict update is."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[bytes, bytes] = {}
        self.writes = 0

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.data.get(key) for key in keys]

    def reader(self) -> ViewReader:
        return ViewReader(_DictReader(self.data))

    def write(self, puts: list[tuple[bytes, bytes]]) -> None:
        self.data.update(puts)
        self.writes += 1

    def close(self) -> None:
        pass


class MemoryPartitionStores:
    """One MemoryPartitionStore per partition; a dropped partition's records are gone."""

    def __init__(self) -> None:
        self.stores: dict[int, MemoryPartitionStore] = {}
        self.open_partitions: set[int] = set()

    def open(self, partition: int) -> MemoryPartitionStore:
        self.open_partitions.add(partition)
        return self.stores.setdefault(partition, MemoryPartitionStore())

    def get(self, partition: int) -> MemoryPartitionStore | None:
        return self.stores.get(partition) if partition in self.open_partitions else None

    def close_partition(self, partition: int) -> None:
        self.open_partitions.discard(partition)

    def drop(self, partition: int) -> None:
        self.open_partitions.discard(partition)
        self.stores.pop(partition, None)

    def close(self) -> None:
        self.open_partitions.clear()


class SoloMembership:
    """A cluster of this one instance, placed on every partition once the runner knows them."""

    failure: BaseException | None = None

    def __init__(
        self, settings: QuerySettings, own_state: Callable[[], Member], runner: Placeable
    ) -> None:
        self._me = settings.query_instance_id
        self._own_state = own_state
        self._runner = runner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._place, daemon=True)

    def _place(self) -> None:
        while not self._stop.is_set() and self._runner.partitions is None:
            self._stop.wait(0.01)
        if self._runner.partitions is not None:
            self._runner.place(frozenset(range(self._runner.partitions)))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def view(self) -> ClusterView:
        return ClusterView(self._me, {self._me: self._own_state()}, self._runner.partitions or 0, 1)

    def fresh(self, partition: int, applied: int) -> bool:
        """Alone, with no Kafka behind it: always current (a lapsed lease is tested on its own)."""
        return True


@dataclass
class FakeDeadLetters:
    """Keeps what it is sent; `failure` makes the next sends fail as a broker outage would."""

    sent: list[DeadLetter] = field(default_factory=list)
    failure: str | None = None
    closed: bool = False

    def send(self, letters: Sequence[DeadLetter]) -> None:
        if self.failure is not None:
            raise DeadLetterFailed(len(letters), self.failure)
        self.sent.extend(letters)

    def close(self) -> None:
        self.closed = True


class FakeLog:
    """A topic's partitions as lists of records; tests append, consumers read."""

    def __init__(self, topic: str, partitions: int) -> None:
        self.topic = topic
        self.records: list[list[FakeMessage]] = [[] for _ in range(partitions)]
        self._lock = threading.Lock()

    def append(self, partition: int, value: bytes | None, key: bytes | None = None) -> int:
        with self._lock:
            records = self.records[partition]
            records.append(FakeMessage(self.topic, partition, len(records), value, key))
            return len(records) - 1

    def append_event(self, partition: int, event: AnyOrderPlaced) -> int:
        return self.append(partition, encode(event), event.user_id.encode())

    def read(self, partition: int, start: int, limit: int) -> list[FakeMessage]:
        with self._lock:
            return self.records[partition][start : start + limit]

    def end(self, partition: int) -> int:
        with self._lock:
            return len(self.records[partition])


class FakeConsumer:
    """The `ports.Consumer` the runner calls, over a FakeLog (partitions assigned by hand)."""

    def __init__(self, log: FakeLog) -> None:
        self._log = log
        self._positions: dict[int, int] = {}
        self.paused: set[int] = set()
        self.committed: dict[int, int] = {}
        self.closed = False

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        partitions = {p: None for p in range(len(self._log.records))}
        name = self._log.topic if topic is None else topic
        return SimpleNamespace(topics={name: SimpleNamespace(error=None, partitions=partitions)})

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        return 0, self._log.end(partition.partition)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._positions[tp.partition] = max(tp.offset, 0)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._positions.pop(tp.partition, None)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self._positions.get(tp.partition, -1001))
            for tp in partitions
        ]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.update(tp.partition for tp in partitions)

    def seek(self, partition: TopicPartition) -> None:
        self._positions[partition.partition] = max(partition.offset, 0)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        batch: list[FakeMessage] = []
        for partition, position in self._positions.items():
            if partition in self.paused:
                continue
            found = self._log.read(partition, position, num_messages - len(batch))
            self._positions[partition] = position + len(found)
            batch += found
        if not batch and timeout > 0:
            threading.Event().wait(min(timeout, 0.01))
        return batch

    def commit(self, *, offsets: list[TopicPartition], asynchronous: Literal[True] = True) -> None:
        self.committed.update({tp.partition: tp.offset for tp in offsets})

    def close(self) -> None:
        self.closed = True


def app_over_fakes(
    settings: QuerySettings,
    log: FakeLog,
    stores: PartitionStores | None = None,
    consumer: Callable[[FakeLog], Consumer] = FakeConsumer,
    membership: MembershipFactory = SoloMembership,
    **adapters: Any,
) -> FastAPI:
    """The real query app, one instance alone, over the fakes: `log` as the orders topic."""
    return create_app(
        settings,
        stores=stores if stores is not None else MemoryPartitionStores(),
        dead_letters=FakeDeadLetters(),
        consumer_factory=lambda: consumer(log),
        provision_topics=lambda: "test-topic-id",
        membership=membership,
        **adapters,
    )
