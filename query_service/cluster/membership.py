"""Membership through Kafka alone: each instance heartbeats its `Member` record into a compacted
topic, reads everyone's, and hands the placement of the live ones to the runner.

A clean stop writes a tombstone, so the others take over at once; a crashed instance is dropped
when its heartbeats stop for QUERY_MEMBER_TIMEOUT_MS. No group protocol is involved, so no
rebalance or static-membership session is ever waited out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from query_service.cluster.model import ClusterView, Lease, Member, alive, covers
from query_service.exceptions import InstanceIdClash
from query_service.settings import QuerySettings
from shared.kafka import TopicSpec, common_config, consumer_config, ensure_topics, is_fatal

log = logging.getLogger(__name__)

# How long a clean leave (the tombstone written and flushed) may take before stop() gives up.
STOP_S: Final = 10.0
# The lease (model.Lease): a copy answers reads without a token only while this instance has
# heard one of its own heartbeats back from Kafka, sent less than this share of
# QUERY_MEMBER_TIMEOUT_MS ago, and the copy has reached the log's end as it was then. The others
# drop a member only after the whole timeout, so a lapsed lease always comes first.
LEASE_SHARE: Final = 0.5
# Heartbeats sent and not yet heard back, by their `heartbeat_ms`: enough for a slow round trip.
SENT_KEPT: Final = 64
# The shortest wait for the log's end (a fence): a heartbeat interval, at least this.
FENCE_MIN_S: Final = 0.5
# Leases heard back and kept (the newest): a newer one counts once its end is reached.
LEASES_KEPT: Final = 8


def lease_s(settings: QuerySettings) -> float:
    """How old a lease may be: also the bound on what a read without a token may miss."""
    return settings.query_member_timeout_ms / 1000 * LEASE_SHARE


def members_topic(settings: QuerySettings) -> TopicSpec:
    return TopicSpec(
        settings.members_topic,
        1,
        settings.kafka_replication_factor,
        {"cleanup.policy": "compact", "segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1"},
    )


class Membership:
    """Runs on its own thread (`query-membership`): heartbeat, read the others, recompute the
    placement. `view()` and `failure` are read from any thread: the members heard of are
    guarded by the lock, `failure` is set once."""

    def __init__(
        self,
        settings: QuerySettings,
        own_state: Callable[[], Member],
        on_placement: Callable[[frozenset[int]], None],
        partitions: Callable[[], int | None],
    ) -> None:
        self._settings = settings
        self._own_state = own_state
        self._on_placement = on_placement
        self._partitions = partitions
        self._me = settings.query_instance_id
        self._heard: dict[str, Member] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="query-membership", daemon=True)
        self.loaded = threading.Event()
        self.failure: BaseException | None = None
        self._placed: frozenset[int] | None = None
        self._started_ms = int(time.time() * 1000)
        self._lease_s = lease_s(settings)
        # Membership thread only: the lease of each heartbeat still in flight, and of the newest
        # one heard back, not yet applied to the placement.
        self._sent: dict[int, Lease] = {}
        self._heard_back: Lease | None = None
        # Swapped whole by the membership thread, read by any.
        self._leases: tuple[Lease, ...] = ()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = STOP_S) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def view(self) -> ClusterView:
        """The live members (this one always among them) as last heard."""
        now_ms = int(time.time() * 1000)
        with self._lock:
            heard = dict(self._heard)
        members = alive(heard, now_ms, self._settings.query_member_timeout_ms)
        members[self._me] = self._own_state()
        return ClusterView(
            self._me, members, self._partitions() or 0, self._settings.query_replicas
        )

    def fresh(self, partition: int, applied: int) -> bool:
        """Whether this copy of `partition`, at `applied`, may answer without a token: under a
        current lease (model.covers). Monotonic time, so neither a pause (SIGSTOP, a long GC)
        nor a wall-clock step extends a lease."""
        return covers(self._leases, time.monotonic(), self._lease_s, partition, applied)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            self.failure = exc
            log.exception("the membership thread stopped")
            raise

    def _loop(self) -> None:
        settings = self._settings
        topic = settings.members_topic
        producer = Producer(
            {**common_config(settings, f"query-members-{self._me}"), "linger.ms": 0, "acks": "all"}
        )
        # Assigned by hand from the beginning: the group is never joined nor asked for offsets.
        group = settings.query_consumer_group
        consumer = Consumer(
            {
                **consumer_config(settings, f"query-members-{self._me}", group),
                "fetch.wait.max.ms": 50,
            }
        )
        try:
            end = self._connect(consumer)
            if end is None:
                return
            consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            interval = settings.query_heartbeat_ms / 1000
            next_beat = 0.0
            while not self._stop.is_set():
                now = time.monotonic()
                try:
                    if now >= next_beat:
                        self._beat(producer, consumer)
                        next_beat = now + interval
                    for message in consumer.consume(num_messages=500, timeout=min(interval, 0.1)):
                        self._heard_from(message)
                        if message.error() is None and (message.offset() or 0) + 1 >= end:
                            self.loaded.set()
                    position = consumer.position([TopicPartition(topic, 0)])[0].offset
                    if end == 0 or position >= end:
                        self.loaded.set()
                    producer.poll(0)
                except KafkaException as exc:
                    if is_fatal(exc):
                        raise
                    # Kafka away: the others stop hearing from us and take over; we go on trying.
                    log.warning("membership: Kafka not reachable (%s); retrying", exc)
                    self._stop.wait(settings.query_kafka_retry_s)
                # Placed again only while this instance hears itself: cut off from Kafka, it would
                # see everyone else as gone and take every partition up; it keeps what it holds.
                if self.loaded.is_set() and (self._heard_back is not None or self._hears_itself()):
                    self._place()
                    if self._heard_back is not None:
                        # All heard up to our own heartbeat is placed: its lease counts.
                        self._grant(self._heard_back)
                        self._heard_back = None
            producer.produce(topic, key=self._me.encode(), value=None)
            producer.flush(5)
        finally:
            consumer.close()

    def _connect(self, consumer: Consumer) -> int | None:
        """Create the membership topic and read its end; retry until Kafka answers."""
        settings = self._settings
        while not self._stop.is_set():
            try:
                ensure_topics(settings, [members_topic(settings)], timeout=10)
                _, end = consumer.get_watermark_offsets(
                    TopicPartition(settings.members_topic, 0), timeout=10
                )
                return int(end)
            except (KafkaException, TimeoutError) as exc:
                log.warning("membership topic not reachable (%s); retrying", exc)
                self._stop.wait(settings.query_kafka_retry_s)
        return None

    def _beat(self, producer: Producer, consumer: Consumer) -> None:
        started = time.monotonic()
        member = self._own_state()
        try:
            producer.produce(
                self._settings.members_topic, key=self._me.encode(), value=member.encode()
            )
        except BufferError:
            log.warning("membership heartbeat not queued: the producer's buffer is full")
            return
        # Without the log's end (Kafka slow to answer) the lease covers no partition, but its
        # round trip still tells that this instance hears itself.
        self._sent[member.heartbeat_ms] = Lease(
            started, self._fence(consumer, sorted(member.partitions))
        )
        while len(self._sent) > SENT_KEPT:
            del self._sent[next(iter(self._sent))]

    def _fence(self, consumer: Consumer, partitions: list[int]) -> dict[int, int]:
        """The end offset of each held partition, read now (after the lease's start), within
        about a heartbeat interval; a partition not read in time is not covered this round.

        Through the consumer's QueryWatermarkOffsets, not the admin client's ListOffsets: after
        a broker restart, librdkafka 2.16's admin ListOffsets kept failing with
        FENCED_LEADER_EPOCH (its leader epoch never refreshed), so no lease ever covered again."""
        topic = self._settings.orders_topic
        budget = time.monotonic() + max(self._settings.query_heartbeat_ms / 1000, FENCE_MIN_S)
        ends: dict[int, int] = {}
        for partition in partitions:
            remaining = budget - time.monotonic()
            if remaining <= 0:
                break
            try:
                _, end = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=remaining
                )
            except KafkaException as exc:
                log.debug("partition %d not covered this heartbeat: %s", partition, exc)
                continue
            ends[partition] = int(end)
        return ends

    def _hears_itself(self) -> bool:
        """A heartbeat of this instance came back within the lease."""
        now = time.monotonic()
        return any(now - lease.started < self._lease_s for lease in self._leases)

    def _grant(self, lease: Lease) -> None:
        now = time.monotonic()
        kept = [old for old in self._leases if now - old.started < self._lease_s]
        self._leases = (*kept[-(LEASES_KEPT - 1) :], lease)

    def _heard_from(self, message: Message[Any, Any]) -> None:
        if message.error() is not None:
            log.warning("membership consumer error: %s", message.error())
            return
        raw_key = message.key()
        key = raw_key.decode() if raw_key else ""
        value = message.value()
        if key == self._me:
            self._heard_own(value)
            return
        if not key:
            return
        with self._lock:
            if value is None:
                self._heard.pop(key, None)
            else:
                try:
                    self._heard[key] = Member.decode(value)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("ignoring a malformed membership record of %s: %s", key, exc)

    def _heard_own(self, value: bytes | None) -> None:
        """A record under our id: one of our heartbeats back (the lease), or one that another
        live process wrote (two instances share an id)."""
        if value is None:
            return
        try:
            record = Member.decode(value)
        except (ValueError, KeyError, TypeError):
            return
        mine = self._own_state()
        if record.incarnation == mine.incarnation:
            sent = self._sent.pop(record.heartbeat_ms, None)
            if sent is not None:
                self._heard_back = sent  # heard in the order sent: the newest so far
            return
        if record.heartbeat_ms > self._started_ms:
            raise InstanceIdClash(self._me, record.url, mine.url)

    def _place(self) -> None:
        view = self.view()
        if not view.partitions:
            return
        mine = view.placement()[self._me]
        if mine != self._placed:
            log.info(
                "placement over %s (replicas %d): this instance holds %s",
                sorted(view.members),
                view.replicas,
                sorted(mine),
            )
            self._placed = mine
            self._on_placement(mine)
