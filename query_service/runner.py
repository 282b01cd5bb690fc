"""The consumer thread: take up the partitions placement gives this instance, consume a batch,
hand it to Ingest, then tell the loop what is durable.

Partitions are assigned by hand (placement comes from membership.py, not the group protocol).
Where to resume is the store's business: each partition starts at its stored last applied
offset + 1 (or the beginning). Group offsets are committed after each durable batch only so
that lag tooling sees a position.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from query_service.dead_letters import dead_letter_topic
from query_service.exceptions import DeadLetterFailed
from query_service.ingest import Ingest, Paused
from query_service.metrics import QueryMetrics
from query_service.ports import ConsumerFactory, Progress, TopicProvisioner
from query_service.settings import QuerySettings
from shared.kafka import consumer_config, ensure_topics, orders_topic, topic_id

log = logging.getLogger(__name__)

LAG_REFRESH_S = 1.0
PARTITIONS_REFRESH_S = 30.0


# A batch builds hundreds of thousands of short-lived, acyclic containers (decoded views) that
# reference counting frees; at the default gen-0 threshold (700) the collector keeps re-walking
# the live ones mid-batch. Rarer young collections keep cycles collected at a fraction of the
# cost (over 300k events: 14.1-14.9k events/s pausing it per batch, 15.7-16.9k with these).
GC_THRESHOLDS = (50_000, 20, 100)


def settle_heap() -> None:
    """Move everything alive after start-up out of the garbage collector's sight, and make its
    young collections rarer.

    Without the freeze each full collection walks every module object ever imported (pydantic,
    fastapi, ...), which halved ingest throughput.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def kafka_consumer(settings: QuerySettings) -> Any:
    """The view's consumer. It never joins the group (assign, not subscribe): nothing to wait
    out when an instance stops or starts."""
    return Consumer(
        {
            **consumer_config(settings, "query-service", settings.query_consumer_group),
            # Every partition starts at an explicit offset: one the log no longer has (the topic
            # was recreated, or truncated) is an error, never a silent jump.
            "auto.offset.reset": "error",
        }
    )


def kafka_topics(settings: QuerySettings, timeout: float = 10.0) -> TopicProvisioner:
    """Creates the orders and dead-letter topics if missing; returns the orders topic's id."""

    def provision() -> str:
        ensure_topics(settings, [orders_topic(settings), dead_letter_topic(settings)], timeout)
        return topic_id(settings, settings.orders_topic, timeout)

    return provision


def resume_offset(applied: dict[int, int], partition: int) -> int:
    return applied[partition] + 1 if partition in applied else OFFSET_BEGINNING


@dataclass
class Held:
    """A partition this instance has taken up: caught up once it reached `catch_up_to`."""

    catch_up_to: int
    ready: bool = False
    lag: int = 0
    # Set when the partition stopped at an event newer than this code (until an upgrade).
    paused: Paused | None = None


class Runner:
    def __init__(
        self,
        settings: QuerySettings,
        ingest: Ingest,
        metrics: QueryMetrics,
        progress: Progress,
        *,
        consumer_factory: ConsumerFactory,
        provision_topics: TopicProvisioner,
    ) -> None:
        self._settings = settings
        self._max_lag = settings.query_ready_max_lag
        self._consumer_factory = consumer_factory
        self._provision_topics = provision_topics
        self._topic = settings.orders_topic
        self._ingest = ingest
        self._metrics = metrics
        self._progress = progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="query-runner", daemon=True)
        # Written by the runner thread only; read by the event loop (whole-object swaps).
        self.held: dict[int, Held] = {}
        self.partitions: int | None = None
        self.topic_id = ""
        self.failure: BaseException | None = None
        # What placement asks for; None until membership has placed this instance once.
        self._wanted: frozenset[int] | None = None
        self._dropping: dict[int, float] = {}
        self._lag_checked = 0.0
        self._partitions_checked = time.monotonic()

    @property
    def ready(self) -> bool:
        """Placed, and caught up with every partition it holds."""
        held = self.held
        return (
            self.failure is None
            and self._wanted is not None
            and set(held) == set(self._wanted)
            and all(
                state.ready and state.paused is None and state.lag <= self._max_lag
                for state in held.values()
            )
        )

    def partition_ready(self, partition: int) -> bool:
        state = self.held.get(partition)
        return state is not None and state.ready

    def holds(self, partition: int) -> bool:
        return partition in self.held

    @property
    def alive(self) -> bool:
        return self.failure is None

    def place(self, partitions: frozenset[int]) -> None:
        """Called by membership with the partitions this instance should hold."""
        self._wanted = partitions

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            consumer = self._consumer_factory()
            try:
                if self._connect(consumer):
                    self._consume(consumer)
            finally:
                consumer.close()
        except BaseException as exc:
            self.failure = exc
            log.exception("the consumer thread stopped")
            raise

    def _connect(self, consumer: Any) -> bool:
        """Create the topics and learn the partition count; retry until Kafka answers."""
        while not self._stop.is_set():
            try:
                self.topic_id = self._provision_topics()
                metadata = consumer.list_topics(self._topic, timeout=10).topics[self._topic]
                if metadata.error is not None:
                    raise KafkaException(metadata.error)
                self.partitions = len(metadata.partitions)
                return True
            except (KafkaException, TimeoutError) as exc:
                log.warning("Kafka not reachable (%s); retrying", exc)
                self._stop.wait(self._settings.query_kafka_retry_s)
        return False

    def _consume(self, consumer: Any) -> None:
        batch_max = self._settings.query_batch_max
        timeout = self._settings.query_batch_timeout_ms / 1000
        while not self._stop.is_set():
            self._reconcile(consumer)
            if not self.held:
                self._stop.wait(timeout)
                continue
            # consume() waits for a full batch or the timeout: take what is already fetched at
            # once, else wait for the first record only, so that a lone event is applied at once.
            messages = consumer.consume(num_messages=batch_max, timeout=0)
            if not messages:
                messages = consumer.consume(num_messages=1, timeout=timeout)
                if messages:
                    messages += consumer.consume(num_messages=batch_max - 1, timeout=0)
            if messages:
                try:
                    applied = self._ingest.process(messages, self.held)
                except DeadLetterFailed as exc:
                    log.error("%s; the batch will be retried", exc)
                    self._rewind(consumer, {m.partition() for m in messages})
                    self._stop.wait(self._settings.query_kafka_retry_s)
                    continue
                if applied is not None:
                    self._progress.applied(applied.offsets, applied.changes)
                    self._commit_for_tooling(consumer, applied.offsets)
                    self._pause(consumer, applied.paused)
            self._refresh_lag(consumer)
            self._check_ready(consumer)

    def _reconcile(self, consumer: Any) -> None:
        """Take up the partitions placement added, let go of those it removed."""
        wanted = self._wanted
        now = time.monotonic()
        if wanted is not None and wanted != set(self.held):
            held = dict(self.held)
            gone = [p for p in held if p not in wanted]
            if gone:
                consumer.incremental_unassign([TopicPartition(self._topic, p) for p in gone])
                for partition in gone:
                    del held[partition]
                    self.held = dict(held)
                    self._progress.released(partition)
                    self._ingest.release(partition, drop=False)
                    self._dropping[partition] = now + self._settings.query_drop_grace_s
                    self._metrics.partitions_moved.inc()
                log.info("let go of partitions %s", sorted(gone))
            added = sorted(p for p in wanted if p not in held)
            if added:
                assignment = []
                for partition in added:
                    self._dropping.pop(partition, None)
                    applied = self._ingest.take(partition, self.topic_id)
                    _, end = consumer.get_watermark_offsets(
                        TopicPartition(self._topic, partition), timeout=10
                    )
                    held[partition] = Held(catch_up_to=end, ready=applied + 1 >= end)
                    self._progress.taken(partition, applied)
                    start = applied + 1 if applied >= 0 else OFFSET_BEGINNING
                    assignment.append(TopicPartition(self._topic, partition, start))
                    self._metrics.partitions_moved.inc()
                consumer.incremental_assign(assignment)
                log.info("took up partitions %s", [(tp.partition, tp.offset) for tp in assignment])
            self.held = held
            self._metrics.partitions_held.set(len(held))
        for partition, due in list(self._dropping.items()):
            if now >= due and partition not in self.held:
                del self._dropping[partition]
                self._ingest.release(partition, drop=True)
                log.info("deleted the state of partition %d, no longer held", partition)

    def _pause(self, consumer: Any, paused: dict[int, Paused]) -> None:
        """Stop fetching a partition at an event this code cannot read; the others go on."""
        for partition, stop in paused.items():
            state = self.held.get(partition)
            if state is None or state.paused is not None:
                continue
            tp = TopicPartition(self._topic, partition, stop.offset)
            consumer.pause([tp])
            consumer.seek(tp)
            state.paused = stop
            self._metrics.paused.labels(str(partition)).set(1)

    def _rewind(self, consumer: Any, partitions: set[int]) -> None:
        applied = self._ingest.applied_offsets()
        for partition in partitions & set(self.held):
            consumer.seek(TopicPartition(self._topic, partition, resume_offset(applied, partition)))

    def _commit_for_tooling(self, consumer: Any, offsets: dict[int, int]) -> None:
        try:
            consumer.commit(
                offsets=[TopicPartition(self._topic, p, o + 1) for p, o in offsets.items()],
                asynchronous=True,
            )
        except KafkaException as exc:
            log.debug("group offset commit skipped: %s", exc)

    def _refresh_lag(self, consumer: Any) -> None:
        now = time.monotonic()
        if now - self._lag_checked < LAG_REFRESH_S:
            return
        self._lag_checked = now
        if now - self._partitions_checked >= PARTITIONS_REFRESH_S:
            self._partitions_checked = now
            self._refresh_partitions(consumer)
        applied = self._ingest.applied_offsets()
        for partition, state in self.held.items():
            _, high = consumer.get_watermark_offsets(
                TopicPartition(self._topic, partition), cached=True
            )
            if high >= 0:
                state.lag = max(high - applied.get(partition, -1) - 1, 0)
                self._metrics.lag.labels(str(partition)).set(state.lag)

    def _refresh_partitions(self, consumer: Any) -> None:
        """A topic whose partitions were added: tokens of the new ones become valid and
        placement covers them (existing users keep their partition only if it did not move)."""
        try:
            found = len(consumer.list_topics(self._topic, timeout=5).topics[self._topic].partitions)
        except KafkaException as exc:
            log.debug("partition count not refreshed: %s", exc)
            return
        if self.partitions is not None and found > self.partitions:
            log.warning(
                "topic %s grew from %d to %d partitions", self._topic, self.partitions, found
            )
            self.partitions = found

    def _check_ready(self, consumer: Any) -> None:
        waiting = [p for p, state in self.held.items() if not state.ready]
        if not waiting:
            return
        applied = self._ingest.applied_offsets()
        # The consumer's position covers a partition that ends in a transaction marker, which
        # no applied record ever reaches.
        positions = consumer.position([TopicPartition(self._topic, p) for p in waiting])
        for tp in positions:
            state = self.held[tp.partition]
            reached = max(applied.get(tp.partition, -1) + 1, tp.offset)
            if reached >= state.catch_up_to:
                state.ready = True
                log.info("caught up with partition %d at offset %d", tp.partition, reached)
        self._metrics.ready.set(1 if self.ready else 0)
