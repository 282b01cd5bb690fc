"""The consumer thread: consume a batch, hand it to Ingest, then tell the loop what is durable.

Where to resume is the store's business, never the group's: on every assignment each partition
starts at its stored last applied offset + 1 (or the beginning). Group offsets are committed
after each durable batch only so that lag tooling sees the service's position.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from query_service.exceptions import DeadLetterFailed
from query_service.ingest import Applied, Ingest
from query_service.metrics import QueryMetrics
from query_service.ports import ConsumerFactory, TopicProvisioner
from query_service.settings import QuerySettings
from shared.kafka import TopicSpec, consumer_config, ensure_topics, orders_topic

log = logging.getLogger(__name__)

LAG_REFRESH_S = 1.0


def dead_letter_topic(settings: QuerySettings) -> TopicSpec:
    return TopicSpec(
        settings.orders_dlq_topic, 1, settings.kafka_replication_factor, {"retention.ms": "-1"}
    )


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
    """The view's consumer: static membership, so a restarted instance takes its partitions back."""
    return Consumer(
        {
            **consumer_config(settings, "query-service", settings.query_consumer_group),
            "group.instance.id": settings.query_instance_id,
        }
    )


def kafka_topics(settings: QuerySettings, timeout: float = 10.0) -> TopicProvisioner:
    return partial(
        ensure_topics, settings, [orders_topic(settings), dead_letter_topic(settings)], timeout
    )


def resume_offset(applied: dict[int, int], partition: int) -> int:
    return applied[partition] + 1 if partition in applied else OFFSET_BEGINNING


class Runner:
    def __init__(
        self,
        settings: QuerySettings,
        ingest: Ingest,
        metrics: QueryMetrics,
        on_applied: Callable[[Applied], None],
        *,
        consumer_factory: ConsumerFactory,
        provision_topics: TopicProvisioner,
    ) -> None:
        self._settings = settings
        self._consumer_factory = consumer_factory
        self._provision_topics = provision_topics
        self._topic = settings.orders_topic
        self._ingest = ingest
        self._metrics = metrics
        self._on_applied = on_applied
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="query-runner", daemon=True)
        # Partition ownership comes from the group's assignments; one instance owns them all today.
        self.owned: set[int] = set()
        self.partitions: int | None = None
        self.end_offsets_at_start: dict[int, int] | None = None
        self.failure: BaseException | None = None
        self._lag_checked = 0.0

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def alive(self) -> bool:
        return self.failure is None

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
        """Create the topics and read the end offsets to catch up to; retry until Kafka answers."""
        while not self._stop.is_set():
            try:
                self._provision_topics()
                metadata = consumer.list_topics(self._topic, timeout=10).topics[self._topic]
                if metadata.error is not None:
                    raise KafkaException(metadata.error)
                self.partitions = len(metadata.partitions)
                self.end_offsets_at_start = {
                    p: consumer.get_watermark_offsets(TopicPartition(self._topic, p), timeout=10)[1]
                    for p in range(self.partitions)
                }
                log.info("ready once the view reaches end offsets %s", self.end_offsets_at_start)
                return True
            except (KafkaException, TimeoutError) as exc:
                log.warning("Kafka not reachable (%s); retrying", exc)
                self._stop.wait(self._settings.query_kafka_retry_s)
        return False

    def _consume(self, consumer: Any) -> None:
        consumer.subscribe(
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        batch_max = self._settings.query_batch_max
        timeout = self._settings.query_batch_timeout_ms / 1000
        while not self._stop.is_set():
            # consume() waits for a full batch or the timeout: take what is already fetched at
            # once, else wait for the first record only, so that a lone event is applied at once.
            messages = consumer.consume(num_messages=batch_max, timeout=0)
            if not messages:
                messages = consumer.consume(num_messages=1, timeout=timeout)
                if messages:
                    messages += consumer.consume(num_messages=batch_max - 1, timeout=0)
            if messages:
                try:
                    applied = self._ingest.process(messages, self.owned)
                except DeadLetterFailed as exc:
                    log.error("%s; the batch will be retried", exc)
                    self._rewind(consumer, {m.partition() for m in messages})
                    self._stop.wait(self._settings.query_kafka_retry_s)
                    continue
                if applied is not None:
                    self._on_applied(applied)
                    self._commit_for_tooling(consumer, applied.offsets)
            self._refresh_lag(consumer)
            self._check_ready()

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        applied = self._ingest.applied_offsets()
        for tp in partitions:
            tp.offset = resume_offset(applied, tp.partition)
        self.owned |= {tp.partition for tp in partitions}
        log.info("assigned %s", [(tp.partition, tp.offset) for tp in partitions])
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self.owned -= {tp.partition for tp in partitions}
        log.info("revoked %s", [tp.partition for tp in partitions])
        consumer.unassign()

    def _rewind(self, consumer: Any, partitions: set[int]) -> None:
        applied = self._ingest.applied_offsets()
        for partition in partitions & self.owned:
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
        applied = self._ingest.applied_offsets()
        for partition in self.owned:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(self._topic, partition), cached=True
            )
            if high >= 0:
                lag = max(high - applied.get(partition, -1) - 1, 0)
                self._metrics.lag.labels(str(partition)).set(lag)

    def _check_ready(self) -> None:
        if self._ready.is_set() or self.end_offsets_at_start is None:
            return
        applied = self._ingest.applied_offsets()
        if all(applied.get(p, -1) + 1 >= end for p, end in self.end_offsets_at_start.items()):
            log.info("caught up with the end offsets seen at start-up: ready")
            self._metrics.ready.set(1)
            self._ready.set()
