"""The query service's routes and reader over fakes of its ports: the real app, runner thread and
positions, with an in-memory log, store and dead-letter sink in place of Kafka and RocksDB.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from fastapi.testclient import TestClient

from devtools.issuer import TestIssuer
from query_service.settings import QuerySettings
from query_service.view.partitioning import partition_for
from shared.events import V1_CHANNEL
from shared.tokens import ConsistencyToken
from tests.factories import order, order_v1
from tests.query_fakes import (
    FakeConsumer,
    FakeLog,
    FakeMessage,
    MemoryPartitionStores,
    SoloMembership,
    app_over_fakes,
)
from tests.support import wait_for

PARTITIONS = 3


class Harness:
    def __init__(
        self, client: TestClient, log: FakeLog, stores: MemoryPartitionStores, issuer: TestIssuer
    ) -> None:
        self.client = client
        self.log = log
        self.stores = stores
        self.issuer = issuer

    def operator(self) -> dict[str, str]:
        return self.issuer.headers("ops", ["orders:read-any"])

    def place(self, user_id: str, *items: tuple[str, int, int]) -> str:
        event = order(user_id, *items)
        partition = partition_for(user_id, PARTITIONS)
        offset = self.log.append_event(partition, event)
        return ConsistencyToken(partition, offset).encode()


def _harness(tmp_path: Path, issuer: TestIssuer, **overrides: Any) -> Iterator[Harness]:
    settings = QuerySettings(
        orders_topic_partitions=PARTITIONS,
        query_state_dir=tmp_path,
        query_batch_timeout_ms=10,
        **overrides,
    )
    log = FakeLog(settings.orders_topic, PARTITIONS)
    stores = MemoryPartitionStores()
    app = app_over_fakes(settings, log, stores)
    with TestClient(app) as client:
        # Each request as the user it names: /users/{id}/... with that user's token.
        client.auth = issuer.auth()
        yield Harness(client, log, stores, issuer)


@pytest.fixture
def harness(tmp_path: Path, issuer: TestIssuer) -> Iterator[Harness]:
    yield from _harness(tmp_path, issuer)


def test_a_token_is_answered_once_its_offset_is_applied(harness: Harness) -> None:
    token = harness.place("alice", ("TEA", 499, 2), ("POT", 5001, 1))

    response = harness.client.get("/users/alice/items", params={"consistency_token": token})

    assert response.status_code == 200
    body = response.json()
    assert body["groups"]["cheap"]["lines"][0]["unit_price"] == "4.99"
    assert body["groups"]["cheap"]["item_count"] == 2
    assert body["groups"]["expensive"]["total"] == "50.01"
    assert body["groups"]["affordable"] == {
        "lines": [],
        "item_count": 0,
        "total": "0.00",
        "line_count": 0,
        "next_cursor": None,
    }
    assert ConsistencyToken.parse(body["consistency_token"]).offset >= 0


def test_a_token_the_view_never_reaches_gets_503_with_retry_after(harness: Harness) -> None:
    partition = partition_for("alice", PARTITIONS)
    token = ConsistencyToken(partition, 5).encode()

    response = harness.client.get(
        "/users/alice/items", params={"consistency_token": token, "wait_ms": 50}
    )

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["requested_offset"] == 5


@pytest.mark.parametrize(
    ("token", "status"), [("nonsense", 400), (ConsistencyToken(99, 0).encode(), 400)]
)
def test_malformed_and_foreign_tokens_are_400(harness: Harness, token: str, status: int) -> None:
    response = harness.client.get("/users/alice/items", headers={"X-Consistency-Token": token})
    assert response.status_code == status
    assert response.json()["detail"]


def test_a_group_narrows_the_answer_and_a_bad_one_is_422(harness: Harness) -> None:
    token = harness.place("bob", ("MUG", 500, 1))
    narrowed = harness.client.get(
        "/users/bob/items", params={"consistency_token": token, "group": "affordable"}
    )
    assert list(narrowed.json()["groups"]) == ["affordable"]
    assert harness.client.get("/users/bob/items", params={"group": "cheapish"}).status_code == 422


def test_the_order_endpoint_answers_an_applied_order_and_404_otherwise(harness: Harness) -> None:
    event = order("carol", ("TEA", 100, 3))
    partition = partition_for("carol", PARTITIONS)
    token = ConsistencyToken(partition, harness.log.append_event(partition, event)).encode()

    found = harness.client.get(
        f"/users/carol/orders/{event.order_id}", params={"consistency_token": token}
    )
    missing = harness.client.get(f"/users/carol/orders/{order('carol', ('X', 1, 1)).order_id}")

    assert found.status_code == 200
    assert found.json()["items"][0]["price_group"] == "cheap"
    assert missing.status_code == 404


def test_health_ready_once_caught_up_and_metrics_show_the_position(harness: Harness) -> None:
    token = harness.place("dave", ("TEA", 100, 1))
    harness.client.get("/users/dave/items", params={"consistency_token": token})

    ready = harness.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert harness.client.get("/health/live").json() == {"status": "live", "detail": None}
    assert (
        "query_events_applied_total 1.0"
        in harness.client.get("/metrics", headers=harness.operator()).text
    )


def test_every_route_answers_what_its_response_model_documents(harness: Harness) -> None:
    token = harness.place("erin", ("TEA", 100, 1))
    spec = harness.client.get("/openapi.json").json()
    items_schema = spec["paths"]["/users/{user_id}/items"]["get"]["responses"]["200"]
    assert items_schema["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ItemsOut"
    }
    body = harness.client.get("/users/erin/items", params={"consistency_token": token}).json()
    assert set(body) == set(spec["components"]["schemas"]["ItemsOut"]["properties"])


def test_an_unexpected_error_is_a_logged_json_500(harness: Harness) -> None:
    token = harness.place("alice", ("TEA", 100, 1))
    assert harness.client.get("/users/alice/items", params={"consistency_token": token}).is_success

    def broken() -> None:
        raise RuntimeError("disk on fire")

    for store in harness.stores.stores.values():  # every read of the store fails
        store.reader = broken  # type: ignore[assignment,method-assign]
        store.get_many = broken  # type: ignore[assignment,method-assign]
    client = TestClient(harness.client.app, raise_server_exceptions=False)
    client.auth = harness.issuer.auth()

    response = client.get("/users/alice/items")

    assert harness.stores.stores, "the runner took no partition up"
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}


def test_lines_page_through_a_group_in_sku_then_price_order(harness: Harness) -> None:
    token = ""
    for i in range(7):
        token = harness.place("frank", (f"SKU-{i % 3}", 100 + i, 1), ("BIG", 9000, 1))
    first = harness.client.get(
        "/users/frank/items", params={"consistency_token": token, "limit": 3}
    ).json()
    cheap = first["groups"]["cheap"]
    assert cheap["line_count"] == 7
    assert cheap["item_count"] == 7
    assert [(ln["sku"], ln["unit_price"]) for ln in cheap["lines"]] == [
        ("SKU-0", "1.00"),
        ("SKU-0", "1.03"),
        ("SKU-0", "1.06"),
    ]
    assert first["groups"]["expensive"]["lines"][0]["order_count"] == 7
    assert first["groups"]["expensive"]["next_cursor"] is None

    seen = [(ln["sku"], ln["unit_price"]) for ln in cheap["lines"]]
    cursor = cheap["next_cursor"]
    while cursor is not None:
        page = harness.client.get(
            "/users/frank/items", params={"group": "cheap", "cursor": cursor, "limit": 3}
        ).json()
        assert list(page["groups"]) == ["cheap"]
        seen += [(ln["sku"], ln["unit_price"]) for ln in page["groups"]["cheap"]["lines"]]
        cursor = page["groups"]["cheap"]["next_cursor"]
    assert seen == sorted(seen)
    assert len(seen) == 7


def test_a_foreign_or_malformed_cursor_is_400(harness: Harness) -> None:
    token = harness.place("gina", ("A", 100, 1), ("B", 100, 1))
    page = harness.client.get(
        "/users/gina/items", params={"consistency_token": token, "limit": 1}
    ).json()
    cursor = page["groups"]["cheap"]["next_cursor"]

    for params in (
        {"cursor": "garbage!"},
        {"cursor": cursor, "group": "expensive"},
    ):
        response = harness.client.get("/users/gina/items", params=params)
        assert response.status_code == 400, params
        assert "cursor" in response.json()["detail"]
    assert harness.client.get("/users/hank/items", params={"cursor": cursor}).status_code == 400
    assert harness.client.get("/users/gina/orders", params={"cursor": cursor}).status_code == 400


def test_orders_are_listed_newest_first_page_by_page(harness: Harness) -> None:
    tokens = [harness.place("ivy", (f"SKU-{i}", 100, i + 1)) for i in range(5)]
    first = harness.client.get(
        "/users/ivy/orders", params={"consistency_token": tokens[-1], "limit": 2}
    ).json()
    quantities = [o["items"][0]["quantity"] for o in first["orders"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = harness.client.get("/users/ivy/orders", params={"cursor": cursor, "limit": 2}).json()
        quantities += [o["items"][0]["quantity"] for o in page["orders"]]
        cursor = page["next_cursor"]
    assert quantities == [5, 4, 3, 2, 1]
    assert first["orders"][0]["placed_at"].endswith("+00:00")


def test_sse_sends_a_snapshot_then_only_what_changed(harness: Harness) -> None:
    token = harness.place("jay", ("TEA", 100, 1), ("POT", 6000, 1))
    harness.client.get("/users/jay/items", params={"consistency_token": token})
    with harness.client.stream("GET", "/users/jay/items/stream") as stream:
        lines = stream.iter_lines()
        snapshot = _next_event(lines)
        assert snapshot["event"] == "snapshot"
        assert snapshot["id"] == token.split(":", 1)[1]
        harness.place("jay", ("TEA", 100, 2))
        delta = _next_event(lines)
    assert delta["event"] == "delta"
    body = json.loads(delta["data"])
    assert body == {
        "lines": [
            {
                "sku": "TEA",
                "name": "Item TEA",
                "unit_price": "1.00",
                "quantity": 3,
                "order_count": 2,
                "group": "cheap",
            }
        ],
        "groups": {"cheap": {"item_count": 3, "total": "3.00", "line_count": 1}},
    }


def _next_event(lines: Iterator[str]) -> dict[str, str]:
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in event:
                return event
            continue
        name, _, value = line.partition(":")
        if name:
            event[name] = value.strip()
    raise AssertionError("the stream ended")


class BrokenConsumer(FakeConsumer):
    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        raise RuntimeError("disk full")


def test_a_dead_consumer_thread_ends_the_process_loudly(tmp_path: Path) -> None:
    settings = QuerySettings(orders_topic_partitions=PARTITIONS, query_state_dir=tmp_path)
    log = FakeLog(settings.orders_topic, PARTITIONS)
    ended = threading.Event()
    reasons: list[str] = []

    def terminate(reason: str) -> None:
        reasons.append(reason)
        ended.set()

    app = app_over_fakes(settings, log, consumer=BrokenConsumer, terminate=terminate)
    with TestClient(app) as client:
        assert ended.wait(10)
        assert client.get("/health/ready").status_code == 503
        live = client.get("/health/live")
        assert live.status_code == 503
        assert "disk full" not in live.text  # never echoes the failure to clients
    assert reasons == ["query instance stopping: RuntimeError('disk full')"]


class KafkaAwayAtFirst(FakeConsumer):
    """The log's end cannot be read at first (the instance is cut off from Kafka), then can."""

    failures = 3

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        if not cached and KafkaAwayAtFirst.failures > 0:
            KafkaAwayAtFirst.failures -= 1
            raise KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION))
        return super().get_watermark_offsets(partition, timeout, cached)


def test_partitions_placed_while_kafka_is_away_are_taken_up_once_it_answers(
    tmp_path: Path,
) -> None:
    """Cut off from Kafka, an instance may be placed partitions whose end it cannot read: it
    takes them up once it can, and never ends itself over it."""
    settings = QuerySettings(
        orders_topic_partitions=PARTITIONS, query_state_dir=tmp_path, query_kafka_retry_s=0.05
    )
    log = FakeLog(settings.orders_topic, PARTITIONS)
    log.append_event(0, order("away", ("PEN", 99, 1)))
    reasons: list[str] = []
    app = app_over_fakes(settings, log, consumer=KafkaAwayAtFirst, terminate=reasons.append)
    with TestClient(app) as client:
        wait_for(lambda: client.get("/health/ready").status_code == 200, 10, "ready")
    assert KafkaAwayAtFirst.failures == 0
    assert reasons == []


class DyingMembership(SoloMembership):
    """Places this instance, then its thread dies (the membership topic's ACL revoked, say)."""

    def start(self) -> None:
        super().start()
        self.failure = RuntimeError("members topic not authorised")


def test_a_dead_membership_thread_ends_the_process_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = QuerySettings(orders_topic_partitions=PARTITIONS, query_state_dir=tmp_path)
    ended = threading.Event()
    reasons: list[str] = []

    def terminate(reason: str) -> None:
        reasons.append(reason)
        ended.set()

    log = FakeLog(settings.orders_topic, PARTITIONS)
    app = app_over_fakes(settings, log, membership=DyingMembership, terminate=terminate)
    with TestClient(app) as client:
        assert ended.wait(10)
        live = client.get("/health/live")
        assert live.status_code == 503
        assert "authorised" not in live.text  # never echoes the failure to clients
        assert client.get("/health/ready").status_code == 503
    assert reasons == ["query instance stopping: RuntimeError('members topic not authorised')"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL] == [
        "exiting: query instance stopping: RuntimeError('members topic not authorised')"
    ]


def test_an_order_reads_back_alike_whichever_version_it_was_written_in(harness: Harness) -> None:
    items = (("TEA", 499, 2), ("POT", 5001, 1))
    answers = []
    for user, event in (("v-one", order_v1("v-one", *items)), ("v-two", order("v-two", *items))):
        partition = partition_for(user, PARTITIONS)
        offset = harness.log.append_event(partition, event)
        answer = harness.client.get(
            f"/users/{user}/orders/{event.order_id}",
            params={"consistency_token": ConsistencyToken(partition, offset).encode()},
        )
        assert answer.status_code == 200, answer.text
        answers.append(answer.json())
    v1, v2 = answers
    assert v1["items"] == v2["items"]
    assert v1["items"][0] == {
        "sku": "TEA",
        "name": "Item TEA",
        "unit_price": "4.99",
        "currency": "GBP",
        "quantity": 2,
        "price_group": "cheap",
    }
    assert (v1["channel"], v2["channel"]) == (V1_CHANNEL, "web")
    listed = harness.client.get("/users/v-one/orders").json()["orders"]
    assert listed[0]["items"] == v1["items"]
