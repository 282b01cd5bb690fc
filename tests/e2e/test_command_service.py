"""The command service as a real process against a real Kafka broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from devtools.environment import unique_topic
from devtools.processes import ServiceProcess
from kafka_local.broker import LocalBroker
from query_service.view.partitioning import partition_for
from shared.events import decode
from shared.tokens import ConsistencyToken
from tests.support import as_named_user, wait_for

pytestmark = pytest.mark.kafka

PARTITIONS = 4


def _order(user_id: str, price: str = "12.34") -> dict[str, Any]:
    return {
        "user_id": user_id,
        "items": [{"sku": "SKU-1", "name": "Kettle", "unit_price": price, "quantity": 3}],
    }


def _start(bootstrap: str, log: Path, **extra: str) -> ServiceProcess:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ORDERS_TOPIC": unique_topic(),
        "ORDERS_TOPIC_PARTITIONS": str(PARTITIONS),
        **extra,
    }
    return ServiceProcess("command_service", env, log).start(ready_path="/health/ready")


@pytest.fixture
def service(kafka_bootstrap: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    process = _start(kafka_bootstrap, tmp_path / "command.log")
    try:
        yield process
    finally:
        process.stop()


def _topic(service: ServiceProcess) -> str:
    return service.env["ORDERS_TOPIC"]


def _record_at(bootstrap: str, topic: str, token: ConsistencyToken) -> Message:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, token.partition, token.offset)])
        message: Message = wait_for(
            lambda: _valid(consumer.poll(0.5)), timeout=30, what="the order's record"
        )
        return message
    finally:
        consumer.close()


def _valid(message: Message | None) -> Message | None:
    if message is None or message.error() is not None:
        return None
    return message


def test_accepted_orders_are_on_the_topic_where_their_tokens_say(
    service: ServiceProcess, kafka_bootstrap: str
) -> None:
    for user_id in ("alice", "bob", "carol", "user.42", "21"):
        response = httpx.post(
            f"{service.url}/orders", json=_order(user_id), timeout=10, auth=as_named_user()
        )
        assert response.status_code == 201, response.text
        body = response.json()
        token = ConsistencyToken.parse(response.headers["X-Consistency-Token"])
        assert body["consistency_token"] == token.encode()
        assert token.partition == partition_for(user_id, PARTITIONS)

        record = _record_at(kafka_bootstrap, _topic(service), token)
        assert record.key() == user_id.encode()
        assert record.partition() == token.partition
        assert record.offset() == token.offset
        assert dict(record.headers() or []) == {
            "event_type": b"OrderPlaced",
            "schema_version": b"1",
        }
        event = decode(record.value())
        assert str(event.order_id) == body["order_id"]
        assert event.user_id == user_id
        assert event.placed_at.isoformat().replace("+00:00", "Z") == body["placed_at"]
        assert [(i.sku, i.name, i.unit_price.amount_minor, i.quantity) for i in event.items] == [
            ("SKU-1", "Kettle", 1234, 3)
        ]


def test_same_idempotency_key_gives_the_same_order_id(service: ServiceProcess) -> None:
    headers = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    first = httpx.post(
        f"{service.url}/orders",
        json=_order("dave"),
        headers=headers,
        timeout=10,
        auth=as_named_user(),
    )
    again = httpx.post(
        f"{service.url}/orders",
        json=_order("dave"),
        headers=headers,
        timeout=10,
        auth=as_named_user(),
    )
    assert first.status_code == again.status_code == 201
    assert first.json()["order_id"] == again.json()["order_id"]


def test_topic_is_created_with_its_partitions_and_kept_forever(
    service: ServiceProcess, kafka_bootstrap: str
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topic = _topic(service)
    metadata = admin.list_topics(topic, timeout=10)
    assert len(metadata.topics[topic].partitions) == PARTITIONS
    resource = ConfigResource("TOPIC", topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["retention.ms"].value == "-1"


def test_broker_outage_is_503_and_recovers_without_a_restart(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    ack_timeout_ms = 2000
    service = _start(
        own_broker.bootstrap_servers,
        tmp_path / "command.log",
        ORDER_ACK_TIMEOUT_MS=str(ack_timeout_ms),
    )
    try:
        client = httpx.Client(base_url=service.url, timeout=30, auth=as_named_user())
        assert client.post("/orders", json=_order("erin")).status_code == 201

        own_broker.stop()
        started = time.monotonic()
        response = client.post("/orders", json=_order("erin"))
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert elapsed < ack_timeout_ms / 1000 + 1, f"503 took {elapsed:.2f}s"
        assert int(response.headers["Retry-After"]) >= 1
        assert service.popen is not None
        assert service.popen.poll() is None, "the service must outlive the outage"
        assert client.get("/health/ready").status_code == 503
        assert client.get("/health/live").status_code == 200

        own_broker.start()
        wait_for(
            lambda: client.post("/orders", json=_order("erin")).status_code == 201,
            timeout=60,
            what="orders to be accepted again after the broker came back",
        )
        assert client.get("/health/ready").status_code == 200
        unavailable = next(
            float(line.split()[-1])
            # On the ops listener: no token needed there.
            for line in httpx.get(f"{service.ops_url}/metrics", timeout=5).text.splitlines()
            if line.startswith("orders_unavailable_total ")
        )
        assert unavailable >= 1
    finally:
        service.stop()


def test_starts_without_kafka_and_becomes_ready_when_it_arrives(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    own_broker.stop()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": own_broker.bootstrap_servers,
        "ORDERS_TOPIC": unique_topic(),
        "ORDERS_TOPIC_PARTITIONS": str(PARTITIONS),
    }
    service = ServiceProcess("command_service", env, tmp_path / "command.log").start()
    try:
        client = httpx.Client(base_url=service.url, timeout=30, auth=as_named_user())
        assert client.get("/health/ready").status_code == 503

        own_broker.start()
        wait_for(
            lambda: client.get("/health/ready").status_code == 200,
            timeout=60,
            what="the service to create its topic and become ready",
        )
        assert client.post("/orders", json=_order("frank")).status_code == 201
        admin = AdminClient({"bootstrap.servers": own_broker.bootstrap_servers})
        topic = env["ORDERS_TOPIC"]
        assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == PARTITIONS
    finally:
        service.stop()
