"""The consumer thread: take up the partitions placement gives this instance, consume a batch,
hand it to Ingest, then tell the loop what is durable.

Partitions are assigned by hand (placement comes from cluster/membership.py, not the group
protocol). Where to resume is the store's business: each partition starts at its stored last
applied offset + 1 (or the beginning). A partition taken up with no state, or far behind, is
first offered a hand-off (ingest/handoff.py): a caught-up copy's checkpoint installed in place
of its state, whose applied offset it then resumes from. Group offsets are committed after each
durable batch only so that lag tooling sees a position.

Threads: everything here runs on the `query-runner` thread except `place` (the membership
thread) and `holding`, `holds`, `partition_ready`, `partitions`, `failure` (any thread), which
only read values this thread swaps whole.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from query_service.cluster.handoff import wants_handoff
from query_service.exceptions import DeadLetterFailed
from query_service.ingest.batch import Ingest
from query_service.metrics import QueryMetrics
from query_service.ports import (
    Consumer,
    ConsumerFactory,
    Handoff,
    HeldPartition,
    Holding,
    Paused,
    Progress,
    TopicProvisioner,
)
from query_service.settings import QuerySettings
from shared.kafka import is_fatal

log = logging.getLogger(__name__)

LAG_REFRESH_S = 1.0
PARTITIONS_REFRESH_S = 30.0


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
        handoff: Handoff | None = None,
    ) -> None:
        self._settings = settings
        self._max_lag = settings.query_ready_max_lag
        self._consumer_factory = consumer_factory
        self._provision_topics = provision_topics
        self._topic = settings.orders_topic
        self._ingest = ingest
        self._handoff = handoff
        self._metrics = metrics
        self._progress = progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="query-runner", daemon=True)
        # Swapped whole by this thread, never changed in place: read from any thread.
        self._held: dict[int, HeldPartition] = {}
        self._partitions: int | None = None
        self._failure: BaseException | None = None
        # Partitions let go, still on disk, with their last applied offsets.
        self._kept: dict[int, int] = {}
        # Swapped whole by the membership thread (place), read here.
        self._wanted: frozenset[int] | None = None
        # This thread's own.
        self._topic_id = ""
        self._dropping: dict[int, float] = {}
        self._lag_checked = 0.0
        # When to try again to take up partitions, after Kafka did not answer (monotonic).
        self._take_after = 0.0
        self._partitions_checked = time.monotonic()

    def holding(self) -> Holding:
        return Holding(self._held, self._wanted, self._max_lag, self._kept)

    def failure(self) -> BaseException | None:
        return self._failure

    @property
    def partitions(self) -> int | None:
        """The orders topic's partition count, once Kafka has said it."""
        return self._partitions

    def applied(self, partition: int) -> int:
        """The last offset applied of a partition held here; -1 when none is, or not held."""
        state = self._held.get(partition)
        return -1 if state is None else state.applied

    def partition_ready(self, partition: int) -> bool:
        state = self._held.get(partition)
        return state is not None and state.ready

    def holds(self, partition: int) -> bool:
        return partition in self._held

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
            self._failure = exc
            log.exception("the consumer thread stopped")
            raise

    def _connect(self, consumer: Consumer) -> bool:
        """Create the topics and learn the partition count; retry until Kafka answers."""
        while not self._stop.is_set():
            try:
                self._topic_id = self._provision_topics()
                metadata = consumer.list_topics(self._topic, timeout=10).topics[self._topic]
                if metadata.error is not None:
                    raise KafkaException(metadata.error)
                self._partitions = len(metadata.partitions)
                return True
            except (KafkaException, TimeoutError) as exc:
                log.warning("Kafka not reachable (%s); retrying", exc)
                self._stop.wait(self._settings.query_kafka_retry_s)
        return False

    def _update(self, partition: int, state: HeldPartition) -> None:
        self._held = {**self._held, partition: state}

    def _consume(self, consumer: Consumer) -> None:
        batch_max = self._settings.query_batch_max
        timeout = self._settings.query_batch_timeout_ms / 1000
        while not self._stop.is_set():
            self._reconcile(consumer)
            if not self._held:
                self._stop.wait(timeout)
                continue
            # consume() waits for a full batch or the timeout: take what is already fetched at
            # once, else wait for the first record only, so that a lone event is applied at once.
            messages = consumer.consume(num_messages=batch_max, timeout=0)
            if not messages:
                messages = consumer.consume(num_messages=1, timeout=timeout)
                if messages:
                    messages = [*messages, *consumer.consume(num_messages=batch_max - 1, timeout=0)]
            if messages:
                try:
                    applied = self._ingest.process(messages, self._held.keys())
                except DeadLetterFailed as exc:
                    log.error("%s; the batch will be retried", exc)
                    self._rewind(
                        consumer, {p for m in messages if (p := m.partition()) is not None}
                    )
                    self._stop.wait(self._settings.query_kafka_retry_s)
                    continue
                if applied is not None:
                    held = dict(self._held)
                    for partition, offset in applied.offsets.items():
                        held[partition] = replace(held[partition], applied=offset)
                    self._held = held
                    self._progress.applied(applied.offsets, applied.changes, applied.origins)
                    self._commit_for_tooling(consumer, applied.offsets)
                    self._pause(consumer, applied.paused)
            self._refresh_lag(consumer)
            self._check_ready(consumer)

    def _reconcile(self, consumer: Consumer) -> None:
        """Take up the partitions placement added, let go of those it removed."""
        wanted = self._wanted
        now = time.monotonic()
        if wanted is not None and wanted != set(self._held):
            gone = [p for p in self._held if p not in wanted]
            if gone:
                consumer.incremental_unassign([TopicPartition(self._topic, p) for p in gone])
                for partition in gone:
                    self._kept = {**self._kept, partition: self._held[partition].applied}
                    self._held = {p: s for p, s in self._held.items() if p != partition}
                    self._progress.released(partition)
                    self._ingest.release(partition, drop=False)
                    self._dropping[partition] = now + self._settings.query_drop_grace_s
                    self._metrics.partitions_moved.inc()
                log.info("let go of partitions %s", sorted(gone))
            added = sorted(p for p in wanted if p not in self._held)
            if added and now >= self._take_after:
                assignment = []
                for partition in added:
                    try:
                        _, end = consumer.get_watermark_offsets(
                            TopicPartition(self._topic, partition), timeout=10
                        )
                    except KafkaException as exc:
                        if is_fatal(exc):
                            raise
                        # Kafka away: taken up once it answers (the others hold it meanwhile).
                        log.warning("partition %d not taken up yet: %s", partition, exc)
                        self._take_after = now + self._settings.query_kafka_retry_s
                        break
                    self._dropping.pop(partition, None)
                    self._kept = {p: o for p, o in self._kept.items() if p != partition}
                    applied = self._ingest.take(partition, self._topic_id)
                    applied = self._handed_over(partition, applied, end)
                    self._update(
                        partition,
                        HeldPartition(catch_up_to=end, applied=applied, ready=applied + 1 >= end),
                    )
                    self._progress.taken(partition, applied)
                    start = applied + 1 if applied >= 0 else OFFSET_BEGINNING
                    assignment.append(TopicPartition(self._topic, partition, start))
                    self._metrics.partitions_moved.inc()
                if assignment:
                    consumer.incremental_assign(assignment)
                    log.info(
                        "took up partitions %s", [(tp.partition, tp.offset) for tp in assignment]
                    )
            self._metrics.partitions_held.set(len(self._held))
        for partition, due in list(self._dropping.items()):
            if now >= due and partition not in self._held:
                del self._dropping[partition]
                self._kept = {p: o for p, o in self._kept.items() if p != partition}
                self._ingest.release(partition, drop=True)
                log.info(
                    "deleted the state of partition %d, no longer held",
                    partition,
                    extra={"partition": partition},
                )

    def _handed_over(self, partition: int, applied: int, end: int) -> int:
        """The partition's applied offset once a hand-off is done with: the installed copy's,
        else (none worth asking for, or it failed) the state's own, to be built from the log."""
        min_lag = self._settings.query_handoff_min_lag
        if self._handoff is None or not wants_handoff(applied, end, min_lag):
            return applied
        # The store is closed while a copy may replace it, and opened again either way.
        self._ingest.release(partition, drop=False)
        self._handoff.receive(partition, applied, end, self._topic_id)
        return self._ingest.take(partition, self._topic_id)

    def _pause(self, consumer: Consumer, paused: dict[int, Paused]) -> None:
        """Stop fetching a partition at an event this code cannot read; the others go on."""
        for partition, stop in paused.items():
            state = self._held.get(partition)
            if state is None or state.paused is not None:
                continue
            tp = TopicPartition(self._topic, partition, stop.offset)
            consumer.pause([tp])
            consumer.seek(tp)
            self._update(partition, replace(state, paused=stop))
            self._metrics.paused.labels(str(partition)).set(1)

    def _rewind(self, consumer: Consumer, partitions: set[int]) -> None:
        for partition in partitions & set(self._held):
            applied = self._held[partition].applied
            start = applied + 1 if applied >= 0 else OFFSET_BEGINNING
            consumer.seek(TopicPartition(self._topic, partition, start))

    def _commit_for_tooling(self, consumer: Consumer, offsets: dict[int, int]) -> None:
        try:
            consumer.commit(
                offsets=[TopicPartition(self._topic, p, o + 1) for p, o in offsets.items()],
                asynchronous=True,
            )
        except KafkaException as exc:
            log.debug("group offset commit skipped: %s", exc)

    def _refresh_lag(self, consumer: Consumer) -> None:
        now = time.monotonic()
        if now - self._lag_checked < LAG_REFRESH_S:
            return
        self._lag_checked = now
        if now - self._partitions_checked >= PARTITIONS_REFRESH_S:
            self._partitions_checked = now
            self._refresh_partitions(consumer)
        held = dict(self._held)
        for partition, state in held.items():
            _, high = consumer.get_watermark_offsets(
                TopicPartition(self._topic, partition), cached=True
            )
            if high >= 0:
                lag = max(high - state.applied - 1, 0)
                held[partition] = replace(state, lag=lag)
                self._metrics.lag.labels(str(partition)).set(lag)
        self._held = held

    def _refresh_partitions(self, consumer: Consumer) -> None:
        """A topic whose partitions were added: tokens of the new ones become valid and
        placement covers them (existing users keep their partition only if it did not move)."""
        try:
            found = len(consumer.list_topics(self._topic, timeout=5).topics[self._topic].partitions)
        except KafkaException as exc:
            log.debug("partition count not refreshed: %s", exc)
            return
        if self._partitions is not None and found > self._partitions:
            log.warning(
                "topic %s grew from %d to %d partitions", self._topic, self._partitions, found
            )
            self._partitions = found

    def _check_ready(self, consumer: Consumer) -> None:
        waiting = [p for p, state in self._held.items() if not state.ready]
        if not waiting:
            return
        # The consumer's position covers a partition that ends in a transaction marker, which
        # no applied record ever reaches.
        positions = consumer.position([TopicPartition(self._topic, p) for p in waiting])
        for tp in positions:
            state = self._held[tp.partition]
            reached = max(state.applied + 1, tp.offset)
            if reached >= state.catch_up_to:
                self._update(tp.partition, replace(state, ready=True))
                log.info(
                    "caught up with partition %d at offset %d",
                    tp.partition,
                    reached,
                    extra={"partition": tp.partition, "offset": reached},
                )
        self._metrics.ready.set(1 if self.holding().ready else 0)
