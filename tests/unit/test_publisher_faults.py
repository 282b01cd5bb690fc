"""The Kafka publisher's failures that no retry can cure: a fatal producer error, or the death of
its delivery-report thread. A small fake producer stands in for librdkafka; the publisher, the
routes and the lifespan are the real ones."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from confluent_kafka import KafkaError, KafkaException
from fastapi.testclient import TestClient

from command_service.app import create_app
from command_service.publisher import KafkaPublisher
from command_service.settings import CommandSettings
from devtools.issuer import TestIssuer
from tests.support import wait_for

ORDER: dict[str, Any] = {
    "user_id": "alice",
    "items": [{"sku": "TEA-1", "name": "Tea", "unit_price": "4.99", "quantity": 2}],
}
FENCED = KafkaError(KafkaError._FENCED, "producer fenced by a newer instance", fatal=True)


@dataclass
class FakeRecord:
    """A delivered record as confluent_kafka's Message shows it to a delivery callback."""

    at: int

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.at


@dataclass
class FakeProducer:
    """What KafkaPublisher calls on a Producer. Records are acknowledged by poll() unless `hold`;
    `raise_error` makes poll() hand an error to error_cb; `poll_raises` makes poll() raise;
    `produce_raises` makes produce() raise."""

    config: dict[str, Any]
    hold: bool = False
    produced: list[Callable[[KafkaError | None, Any], None]] = field(default_factory=list)
    raise_error: KafkaError | None = None
    poll_raises: BaseException | None = None
    produce_raises: KafkaException | None = None
    acknowledged: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def produce(self, topic: str, **kwargs: Any) -> None:
        if self.produce_raises is not None:
            raise self.produce_raises
        with self.lock:
            self.produced.append(kwargs["on_delivery"])

    def poll(self, timeout: float) -> int:
        time.sleep(min(timeout, 0.01))
        if self.poll_raises is not None:
            raise self.poll_raises
        if self.raise_error is not None:
            error, self.raise_error = self.raise_error, None
            self.config["error_cb"](error)
        if self.hold:
            return 0
        with self.lock:
            waiting = self.produced[self.acknowledged :]
            self.acknowledged = len(self.produced)
        for at, on_delivery in enumerate(waiting, self.acknowledged - len(waiting)):
            on_delivery(None, FakeRecord(at))
        return len(waiting)

    def flush(self, timeout: float) -> int:
        return 0 if not self.hold else len(self.produced) - self.acknowledged

    def list_topics(self, topic: str, timeout: float) -> Any:
        partitions = {0: SimpleNamespace(id=0)}
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions=partitions)})


@dataclass
class Harness:
    client: TestClient
    producer: FakeProducer
    terminated: list[str]


@pytest.fixture
def harness(issuer: TestIssuer) -> Iterator[Harness]:
    made: list[FakeProducer] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(config))
        return made[-1]

    settings = CommandSettings(order_ack_timeout_ms=10_000)
    terminated: list[str] = []
    app = create_app(
        settings,
        KafkaPublisher(settings, producer_factory=factory),
        provision_topic=lambda: None,
        terminate=terminated.append,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {issuer.mint(ORDER['user_id'])}"
        yield Harness(client, made[0], terminated)


def _post(client: TestClient, key: str = "k1") -> httpx.Response:
    return client.post("/orders", json=ORDER, headers={"Idempotency-Key": key})


def _post_in_background(harness: Harness) -> Future[httpx.Response]:
    pool = ThreadPoolExecutor(1)
    pending = pool.submit(_post, harness.client)
    pool.shutdown(wait=False)
    wait_for(lambda: harness.producer.produced, 5, "the record handed to the producer")
    return pending


def _assert_failed_for_good(harness: Harness, reason: str) -> None:
    wait_for(lambda: harness.terminated, 5, "the terminate hook")
    assert len(harness.terminated) == 1
    assert reason in harness.terminated[0]
    ready = harness.client.get("/health/ready")
    assert ready.status_code == 503
    assert reason in ready.json()["detail"]
    later = _post(harness.client, "k2")
    assert later.status_code == 503
    assert later.headers["Retry-After"]


def test_a_fatal_error_fails_the_waiting_order_at_once_and_ends_the_process(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.producer.hold = True
    pending = _post_in_background(harness)
    started = time.monotonic()
    harness.producer.raise_error = FENCED

    response = pending.result(timeout=5)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    # Well before the 10-second acknowledgement timeout: the waiting order is failed by the error.
    assert time.monotonic() - started < 3
    _assert_failed_for_good(harness, "fenced")
    # The shared connection logger still speaks, and the exit is announced once.
    assert any(r.name == "shared.kafka" and "fenced" in r.getMessage() for r in caplog.records)
    exits = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(exits) == 1
    assert "exiting" in exits[0].getMessage()


def test_the_delivery_thread_dying_fails_the_publisher(harness: Harness) -> None:
    harness.producer.hold = True
    pending = _post_in_background(harness)
    harness.producer.poll_raises = RuntimeError("a callback blew up")

    assert pending.result(timeout=5).status_code == 503
    _assert_failed_for_good(harness, "a callback blew up")


def test_a_fatal_error_raised_by_produce_fails_the_publisher(harness: Harness) -> None:
    harness.producer.produce_raises = KafkaException(FENCED)

    assert _post(harness.client).status_code == 503
    _assert_failed_for_good(harness, "fenced")


def test_a_passing_error_is_only_logged(harness: Harness) -> None:
    harness.producer.raise_error = KafkaError(KafkaError._TRANSPORT, "connection reset")
    wait_for(lambda: harness.producer.raise_error is None, 5, "the error served")

    assert _post(harness.client).status_code == 201
    assert harness.client.get("/health/ready").status_code == 200
    assert harness.terminated == []
