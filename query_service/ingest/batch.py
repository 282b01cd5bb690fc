"""One batch of records into the view, in the order that keeps it exactly once:

1. decode every record; a bad one becomes a dead letter,
2. deliver the dead letters and wait for the broker's ack,
3. per partition, in one batched read of its store: which orders the view already holds, and
   the records the events touch; fold the new events into them (pure),
4. write the changed records, the orders and the partition's last offset in one atomic commit
   of its store.

A crash before 4 replays the batch from the stored offsets (a dead letter may then be sent
twice; its headers name the original record); a crash after 4 replays nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError

from query_service.exceptions import ConsumerFailed
from query_service.metrics import QueryMetrics
from query_service.ports import (
    NO_ORIGINS,
    DeadLetter,
    DeadLetters,
    Origins,
    PartitionStores,
    Paused,
)
from query_service.view.decoding import Placed, decode_placed
from query_service.view.projection import Changes
from shared.events import FUTURE_VERSION
from shared.exceptions import EventDecodeError
from shared.tracing import Attributes, Tracing, sampled, trace_carrier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applied:
    """A durable batch: each partition's new last applied offset, and the records it changed."""

    offsets: dict[int, int]
    changes: Changes
    paused: dict[int, Paused] = field(default_factory=dict)
    origins: Origins = NO_ORIGINS


class Ingest:
    """Folds batches into the partitions this instance holds, each partition's records and
    offset in one atomic commit of that partition's store.
    """

    def __init__(
        self,
        stores: PartitionStores,
        dead_letters: DeadLetters,
        metrics: QueryMetrics,
        tracing: Tracing | None = None,
    ) -> None:
        self._stores = stores
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._tracing = tracing if tracing is not None else Tracing.off()

    def take(self, partition: int, topic_id: str) -> int:
        """Open the partition's store; its last applied offset (-1: nothing applied yet)."""
        store = self._stores.open(partition)
        store.bind_topic(topic_id)
        return store.applied_offsets().get(partition, -1)

    def release(self, partition: int, *, drop: bool) -> None:
        """Stop applying the partition; with `drop`, delete its state too."""
        if drop:
            self._stores.drop(partition)
        else:
            self._stores.close_partition(partition)

    def _applied_offsets(self, owned: Collection[int]) -> dict[int, int]:
        found: dict[int, int] = {}
        for partition in owned:
            store = self._stores.get(partition)
            if store is not None:
                found[partition] = store.applied_offsets().get(partition, -1)
        return found

    def process(self, messages: Sequence[Any], owned: Collection[int]) -> Applied | None:
        """Apply a batch of confluent_kafka Messages of the owned partitions; None if none new.

        Where each partition stands is its store's business (the offset committed with its
        records): nothing here keeps a copy."""
        started = time.perf_counter()
        # With tracing on, (trace context, attributes) of each event its POST traced, and the
        # contexts by user for their deltas.
        traced: list[tuple[dict[str, str], Attributes]] | None = None
        traces: dict[str, list[dict[str, str]]] = {}
        if self._tracing.enabled:
            traced, started_ns = [], time.time_ns()
        events: dict[int, list[Placed]] = {}
        letters: list[DeadLetter] = []
        offsets: dict[int, int] = {}
        paused: dict[int, Paused] = {}
        # Per partition, when its batch's first (oldest) record was produced, in ms.
        produced: dict[int, int] = {}
        applied = self._applied_offsets(owned)
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal() or error.code() == KafkaError._AUTO_OFFSET_RESET:
                    raise ConsumerFailed(str(error))
                log.warning("consumer error: %s", error)
                continue
            partition = message.partition()
            offset = message.offset()
            # A record the view already holds (a re-fetch after a seek) must not be folded again.
            if partition not in applied or offset <= applied[partition]:
                continue
            if partition in paused:
                continue  # nothing after an event this code cannot read yet
            if partition not in produced:
                kind, ms = message.timestamp()
                if kind:  # not TIMESTAMP_NOT_AVAILABLE
                    produced[partition] = ms
            value = message.value()
            try:
                event = decode_placed(value, offset)
                events.setdefault(partition, []).append(event)
                if traced is not None:
                    carrier = trace_carrier(message.headers())
                    if carrier and sampled(carrier):
                        traced.append((carrier, {"partition": partition, "offset": offset}))
                        traces.setdefault(event[0], []).append(carrier)
            except EventDecodeError as exc:
                if exc.kind == FUTURE_VERSION:
                    paused[partition] = Paused(offset, exc.message)
                    log.error(
                        "partition %d paused at offset %d: %s",
                        partition,
                        offset,
                        exc.message,
                        extra={"partition": partition, "offset": offset},
                    )
                    continue
                letters.append(
                    DeadLetter(
                        message.topic(),
                        partition,
                        offset,
                        message.key(),
                        value,
                        exc.kind,
                        exc.message,
                    )
                )
            offsets[partition] = offset
        if not offsets and not paused:
            return None
        if letters:
            self._dead_letters.send(letters)
            for letter in letters:
                self._metrics.dead_lettered.labels(letter.kind).inc()
                log.warning(
                    "dead-lettered %s[%d]@%d: %s: %s",
                    letter.topic,
                    letter.partition,
                    letter.offset,
                    letter.kind,
                    letter.message[:200],
                    extra={"partition": letter.partition, "offset": letter.offset},
                )
        changes = Changes()
        count = 0
        for partition, offset in offsets.items():
            store = self._stores.get(partition)
            if store is None:
                raise RuntimeError(f"partition {partition} is owned but its store is not open")
            found = events.get(partition, [])
            count += len(found)
            applied_here = store.apply(found, {partition: offset})
            changes.absorb(applied_here)
            self._metrics.applied_offset.labels(str(partition)).set(offset)
        # Freshness: how old the oldest event of each partition's batch was once committed.
        now_ms = time.time() * 1000
        for partition, ms in produced.items():
            if partition in offsets:
                self._metrics.freshness.labels(str(partition)).observe(
                    max(0.0, (now_ms - ms) / 1000)
                )
        if traced:
            self._tracing.children("orders apply", traced, started_ns, time.time_ns())
        self._metrics.events_applied.inc(count)
        self._metrics.duplicates.inc(changes.duplicates)
        self._metrics.batch_size.observe(count + len(letters))
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        return Applied(offsets, changes, paused, Origins(produced, traces))
