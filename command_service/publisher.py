"""Where events go: a small publishing port and its Kafka implementation.

One producer per process, one thread serving its delivery reports, and an asyncio future per
message resolved from that thread; a request never flushes. A fatal producer error (librdkafka's
`err.fatal()`: fencing, a refused InitProducerId) or the death of that thread fails the publisher
for good: every waiting and later publish raises PublishUnavailable, it is not ready, and
`wait_failed()` returns the reason so that the composition root can end the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from command_service.exceptions import PublishUnavailable
from command_service.settings import CommandSettings
from shared.kafka import producer_config

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a record landed."""

    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    detail: str


class Publisher(Protocol):
    async def start(self) -> None: ...

    async def publish(self, key: bytes, value: bytes, headers: Headers) -> Delivery:
        """Resolve once the broker has acknowledged the record; else raise PublishUnavailable."""
        ...

    async def readiness(self) -> Readiness: ...

    async def close(self) -> None: ...


@runtime_checkable
class Fallible(Protocol):
    """A publisher that can fail for good (a Kafka one); an in-memory one never does."""

    async def wait_failed(self) -> str:
        """Return, with the reason, once the publisher can never publish again."""
        ...


class ProducerLike(Protocol):
    """What KafkaPublisher calls on a confluent_kafka Producer (a unit test's fake has these)."""

    def produce(
        self,
        topic: str,
        value: str | bytes | None = ...,
        key: str | bytes | None = ...,
        partition: int = ...,
        callback: Callable[[KafkaError | None, Message], None] | None = ...,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = ...,
        timestamp: int = ...,
        headers: dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]] | None = ...,
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...

    def list_topics(self, topic: str, timeout: float) -> Any: ...


ProducerFactory = Callable[[dict[str, Any]], ProducerLike]


class KafkaPublisher:
    """Publishes to the orders topic with an idempotent, acks=all producer."""

    def __init__(
        self,
        settings: CommandSettings,
        client_id: str = "command-service",
        *,
        producer_factory: ProducerFactory = Producer,
    ) -> None:
        self._settings = settings
        self._client_id = client_id
        self._producer_factory = producer_factory
        self._topic = settings.orders_topic
        self._timeout_s = settings.order_ack_timeout_ms / 1000
        self._producer: ProducerLike | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None
        # Set once, from any thread; the futures are only touched on the event loop.
        self._failure: str | None = None
        self._failed: asyncio.Event | None = None
        self._pending: set[asyncio.Future[Delivery]] = set()
        # Outcomes served by one poll(), handed to the event loop together: one wake-up per
        # poll instead of one per message.
        self._served: list[tuple[asyncio.Future[Delivery], Delivery | PublishUnavailable]] = []

    @property
    def failure(self) -> str | None:
        return self._failure

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._failed = asyncio.Event()
        config = producer_config(
            self._settings,
            self._client_id,
            delivery_timeout_ms=self._settings.order_ack_timeout_ms,
        )
        config |= {
            # Only the lifespan creates the topic (with its partitions and retention); a metadata
            # request from this producer must never auto-create it with the broker's defaults.
            "allow.auto.create.topics": False,
            "error_cb": self._error_callback(config["error_cb"]),
        }
        self._producer = self._producer_factory(config)
        self._stopping.clear()
        self._poller = threading.Thread(
            target=self._serve_delivery_reports, name="kafka-delivery-reports", daemon=True
        )
        self._poller.start()

    def _error_callback(
        self, log_error: Callable[[KafkaError], None]
    ) -> Callable[[KafkaError], None]:
        """The shared logger of client errors, plus: a fatal one fails the publisher."""

        def on_error(error: KafkaError) -> None:
            log_error(error)
            if error.fatal():
                self._fail(f"fatal Kafka producer error: {error.str()}")

        return on_error

    def _fail(self, reason: str) -> None:
        """Any thread: no publish can succeed from now on."""
        if self._failure is not None:
            return
        self._failure = reason
        log.error("the Kafka publisher failed for good: %s", reason)
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                self._loop.call_soon_threadsafe(self._fail_waiting)

    def _fail_waiting(self) -> None:
        assert self._failure is not None
        for future in self._pending:
            if not future.done():
                future.set_exception(PublishUnavailable(self._failure))
        if self._failed is not None:
            self._failed.set()

    async def wait_failed(self) -> str:
        if self._failed is None:
            raise RuntimeError("the publisher is not started")
        await self._failed.wait()
        assert self._failure is not None
        return self._failure

    def _serve_delivery_reports(self) -> None:
        assert self._producer is not None
        assert self._loop is not None
        try:
            while not self._stopping.is_set():
                self._producer.poll(0.05)
                if self._served:
                    served, self._served = self._served, []
                    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                        self._loop.call_soon_threadsafe(_settle_all, served)
        except Exception as exc:
            # Without this thread no acknowledgement would ever reach a request again.
            log.exception("the delivery-report thread died")
            self._fail(f"the delivery-report thread died: {exc!r}")

    async def publish(self, key: bytes, value: bytes, headers: Headers) -> Delivery:
        if self._failure is not None:
            raise PublishUnavailable(self._failure)
        if self._producer is None or self._loop is None:
            raise PublishUnavailable("the publisher is not started")
        future: asyncio.Future[Delivery] = self._loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            # Runs inside poll() on the delivery-report thread, which then hands it to the loop.
            self._served.append((future, _outcome(err, msg)))

        record_headers: list[tuple[str, str | bytes | None]] = list(headers)
        try:
            self._producer.produce(
                self._topic, value=value, key=key, headers=record_headers, on_delivery=on_delivery
            )
        except BufferError as exc:
            raise PublishUnavailable("the local send queue is full") from exc
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.fatal():
                self._fail(f"fatal Kafka producer error: {error.str()}")
            raise PublishUnavailable(str(exc)) from exc
        self._pending.add(future)
        try:
            # librdkafka checks message timeouts about once a second; leave it room to report.
            return await asyncio.wait_for(future, self._timeout_s + 0.5)
        except TimeoutError as exc:
            raise PublishUnavailable("Kafka did not acknowledge the event in time") from exc
        finally:
            self._pending.discard(future)

    async def readiness(self) -> Readiness:
        if self._failure is not None:
            return Readiness(False, self._failure)
        if self._producer is None:
            return Readiness(False, "the publisher is not started")
        try:
            metadata: Any = await asyncio.to_thread(
                self._producer.list_topics, self._topic, timeout=1
            )
        except KafkaException as exc:
            return Readiness(False, f"Kafka does not answer: {exc}")
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None:
            reason = topic.error.str() if topic is not None else "missing"
            return Readiness(False, f"topic {self._topic!r} is not available: {reason}")
        return Readiness(True, f"topic {self._topic!r} has {len(topic.partitions)} partitions")

    async def close(self) -> None:
        if self._producer is None:
            return
        # A failed producer delivers nothing more: do not hold the shutdown up for it.
        flush_s = 0.0 if self._failure is not None else self._timeout_s
        left = await asyncio.to_thread(self._producer.flush, flush_s)
        if left:
            log.warning("%d events were still unacknowledged at shutdown", left)
        self._stopping.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join, 2.0)
        _settle_all(self._served)  # what flush() served after the poller's last hand-over
        self._served = []
        self._producer = None


def _settle_all(
    served: list[tuple[asyncio.Future[Delivery], Delivery | PublishUnavailable]],
) -> None:
    for future, outcome in served:
        if future.done():  # the caller timed out or went away
            continue
        if isinstance(outcome, Delivery):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)


def _outcome(err: KafkaError | None, msg: Message) -> Delivery | PublishUnavailable:
    if err is not None:
        return PublishUnavailable(err.str())
    partition, offset = msg.partition(), msg.offset()
    if partition is None or offset is None:
        return PublishUnavailable("the broker acknowledged the event without a position")
    return Delivery(partition=partition, offset=offset)
