"""A record too large to dead-letter whole (1.5 MB of garbage, on an orders topic that accepts
it) is dead-lettered truncated and the events around it are applied; a rebuild over a topic with
bad records writes no dead letters again."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from devtools.environment import service_env
from devtools.processes import ServiceProcess
from query_service.ingest.dead_letters import DEAD_LETTER_MAX_BYTES
from query_service.ingest.rebuild import rebuild
from query_service.settings import QuerySettings
from shared.kafka import TopicSpec, ensure_topics
from shared.settings import KafkaSettings
from tests.e2e.query_support import OrderProducer
from tests.e2e.test_query_poison import read_all
from tests.factories import order
from tests.support import as_named_user

pytestmark = pytest.mark.kafka

LARGE = 1_500_000
ORDERS_MAX_BYTES = 2 * 1024 * 1024


def _orders_topic_accepting_large_records(bootstrap: str, topic: str) -> None:
    settings = KafkaSettings(kafka_bootstrap_servers=bootstrap, orders_topic=topic)
    spec = TopicSpec(
        topic,
        settings.orders_topic_partitions,
        1,
        {"retention.ms": "-1", "max.message.bytes": str(ORDERS_MAX_BYTES)},
    )
    ensure_topics(settings, [spec])


def _produce_large(bootstrap: str, topic: str, value: bytes, key: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": ORDERS_MAX_BYTES})
    errors: list[object] = []
    producer.produce(topic, value, key=key, on_delivery=lambda err, _: errors.append(err))
    assert producer.flush(30) == 0
    assert errors == [None]


def _high_watermark(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()


def test_a_record_too_large_to_dead_letter_whole_is_dead_lettered_truncated(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = service_env(kafka_bootstrap, tmp_path / "state")
    topic, user = env["ORDERS_TOPIC"], "large-poison-user"
    _orders_topic_accepting_large_records(kafka_bootstrap, topic)
    garbage = os.urandom(LARGE)
    producer = OrderProducer(kafka_bootstrap, topic)
    producer.place(order(user, ("BEFORE", 100, 1)))
    _produce_large(kafka_bootstrap, topic, garbage, user)
    token = producer.place(order(user, ("AFTER", 9000, 2)))

    service = ServiceProcess("query_service", env, tmp_path / "query.log").start()
    try:
        response = httpx.get(
            f"{service.url}/users/{user}/items",
            params={"consistency_token": token, "wait_ms": 30_000},
            timeout=40,
            auth=as_named_user(),
        )
        assert response.status_code == 200, service.log_tail()
        groups = response.json()["groups"]
        assert (groups["cheap"]["item_count"], groups["expensive"]["item_count"]) == (1, 2)

        [(headers, value)] = read_all(kafka_bootstrap, env["ORDERS_DLQ_TOPIC"], 1)
        assert headers["error_kind"] == "invalid_json"
        assert headers["truncated"] == "true"
        assert headers["original_size"] == str(LARGE)
        assert headers["original_sha256"] == hashlib.sha256(garbage).hexdigest()
        assert 0 < len(value) < DEAD_LETTER_MAX_BYTES
        assert garbage.startswith(value)
        assert httpx.get(f"{service.url}/health/live", timeout=5).status_code == 200
    finally:
        service.stop()


def test_a_rebuild_sends_no_dead_letters_again(
    kafka_bootstrap: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = service_env(kafka_bootstrap, tmp_path / "state")
    user = "rebuild-poison-user"
    producer = OrderProducer(kafka_bootstrap, env["ORDERS_TOPIC"])
    producer.send(order(user, ("OK", 100, 1)))
    producer.send_raw(b"\x00 not an event", user)
    producer.flush()
    settings = QuerySettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        orders_topic=env["ORDERS_TOPIC"],
        orders_dlq_topic=env["ORDERS_DLQ_TOPIC"],
        query_consumer_group=env["QUERY_CONSUMER_GROUP"],
        query_state_dir=tmp_path / "state",
    )
    with caplog.at_level(logging.INFO, logger="query_service.ingest.rebuild"):
        rebuild(settings, progress=False)

    assert _high_watermark(kafka_bootstrap, env["ORDERS_DLQ_TOPIC"]) == 0
    assert any("1 records that are not valid events" in r.getMessage() for r in caplog.records)
