"""Records that are not valid events go to the dead-letter topic with their origin and the error;
the valid events around them are applied and the consumer keeps going."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from devtools.environment import service_env
from devtools.processes import ServiceProcess
from shared.events import encode
from tests.e2e.query_support import OrderProducer, metric
from tests.factories import order
from tests.support import as_named_user, wait_for

pytestmark = pytest.mark.kafka


def patched(user: str, change: dict[str, Any]) -> bytes:
    obj = orjson.loads(encode(order(user, ("P", 250, 1))))
    obj.update(change)
    return orjson.dumps(obj)


def test_bad_records_are_dead_lettered_and_the_rest_applied(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = service_env(kafka_bootstrap, tmp_path / "state")
    service = ServiceProcess("query_service", env, tmp_path / "query.log").start("/health/ready")
    producer = OrderProducer(kafka_bootstrap, env["ORDERS_TOPIC"])
    user = "poison-user"
    before, after = order(user, ("OK1", 100, 1)), order(user, ("OK2", 9000, 2))
    negative = orjson.loads(encode(order(user, ("NEG", 100, 1))))
    negative["items"][0]["unit_price_minor"] = -100
    bad = {
        "invalid_json": b"\x00\xffnot json at all",
        "schema": orjson.dumps({"schema_version": 1, "user_id": user, "surprise": True}),
        "unknown_version": patched(user, {"schema_version": 2}),
        "negative": orjson.dumps(negative),
    }
    try:
        producer.send(before)
        for value in bad.values():
            producer.send_raw(value, user)
        producer.send(after)
        token = producer.flush()
        landed = producer.landed[1:5]

        response = httpx.get(
            f"{service.url}/users/{user}/items",
            params={"consistency_token": token},
            timeout=10,
            auth=as_named_user(),
        )
        assert response.status_code == 200
        groups = response.json()["groups"]
        assert groups["cheap"]["item_count"] == 1
        assert groups["expensive"]["item_count"] == 2
        assert not any(ln["sku"] == "NEG" for g in groups.values() for ln in g["lines"])

        letters = read_all(kafka_bootstrap, env["ORDERS_DLQ_TOPIC"], len(bad))
        kinds = [h["error_kind"] for h, _ in letters]
        assert kinds == ["invalid_json", "schema", "unknown_version", "schema"]
        for (hdrs, value), original, (partition, offset) in zip(
            letters, bad.values(), landed, strict=True
        ):
            assert value == original
            assert hdrs["original_topic"] == env["ORDERS_TOPIC"]
            assert (int(hdrs["original_partition"]), int(hdrs["original_offset"])) == (
                partition,
                offset,
            )
            assert hdrs["error_message"]
        assert "unit_price_minor" in letters[3][0]["error_message"]
        assert metric(service.url, "query_dead_lettered_records_total") >= 1
        assert httpx.get(f"{service.url}/health/live", timeout=5).status_code == 200
    finally:
        service.stop()


def read_all(bootstrap: str, topic: str, count: int) -> list[tuple[dict[str, str], bytes]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    found: list[tuple[dict[str, str], bytes]] = []

    def more() -> bool:
        for message in consumer.consume(num_messages=count, timeout=0.5):
            if message.error() is None:
                hdrs = {k: v.decode() for k, v in message.headers() or []}
                found.append((hdrs, message.value()))
        return len(found) >= count

    try:
        wait_for(more, 30, f"{count} dead letters")
    finally:
        consumer.close()
    return found
