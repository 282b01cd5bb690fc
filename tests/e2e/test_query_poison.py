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
from query_service.view.partitioning import partition_for
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
    negative["items"][0]["unit_price"]["amount_minor"] = -100
    bad = {
        "invalid_json": b"\x00\xffnot json at all",
        "schema": orjson.dumps({"schema_version": 1, "user_id": user, "surprise": True}),
        "unknown_version": patched(user, {"schema_version": 0}),
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
        assert "amount_minor" in letters[3][0]["error_message"]
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


def test_an_event_newer_than_the_service_pauses_its_partition_and_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = service_env(kafka_bootstrap, tmp_path / "state")
    service = ServiceProcess("query_service", env, tmp_path / "query.log").start("/health/ready")
    producer = OrderProducer(kafka_bootstrap, env["ORDERS_TOPIC"])
    user, other = "from-the-future", "in-another-partition"
    partition = partition_for(user, 6)
    assert partition_for(other, 6) != partition
    try:
        first = producer.place(order(user, ("OK", 100, 1)))
        producer.send_raw(patched(user, {"schema_version": 3}), user, 3)
        producer.send(order(user, ("AFTER", 100, 1)))
        after = producer.flush()
        elsewhere = producer.place(order(other, ("ELSEWHERE", 100, 1)))

        client = httpx.Client(base_url=service.url, timeout=10, auth=as_named_user())
        # The other partitions go on.
        assert client.get(
            f"/users/{other}/items", params={"consistency_token": elsewhere}
        ).is_success
        assert client.get(f"/users/{user}/items", params={"consistency_token": first}).is_success
        # This one stops before the newer event: nothing after it is applied, nothing skipped.
        stuck = client.get(
            f"/users/{user}/items", params={"consistency_token": after, "wait_ms": 500}
        )
        assert stuck.status_code == 503
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "upgrade the query service" in ready.json()["detail"]
        assert "upgrade the query service" in ready.json()["partitions"][str(partition)]["paused"]
        assert metric(service.url, "query_paused_partitions") == 1
        assert "upgrade the query service" in service.log_tail(100)
        assert not records_in(kafka_bootstrap, env["ORDERS_DLQ_TOPIC"])
        # A restart (an upgrade) resumes at the newer event itself: it was never passed over.
        applied = ready.json()["partitions"][str(partition)]["applied_offset"]
        assert applied == int(first.rsplit(":", 1)[1])
    finally:
        service.stop()


def records_in(bootstrap: str, topic: str) -> list[bytes]:
    """Every record of a topic's partition 0 up to its end now."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    try:
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        found: list[bytes] = []
        while len(found) < end:
            found += [m.value() for m in consumer.consume(end, timeout=1) if m.error() is None]
        return found
    finally:
        consumer.close()
