"""The query service's routes and reader over fakes of its ports: the real app, runner thread and
positions, with an in-memory log, store and dead-letter sink in place of Kafka and RocksDB.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from query_service.app import create_app
from query_service.settings import QuerySettings
from shared.partitioning import partition_for
from shared.tokens import ConsistencyToken
from tests.factories import order
from tests.query_fakes import FakeConsumer, FakeDeadLetters, FakeLog, MemoryViewStore

PARTITIONS = 3


class Harness:
    def __init__(self, client: TestClient, log: FakeLog, store: MemoryViewStore) -> None:
        self.client = client
        self.log = log
        self.store = store

    def place(self, user_id: str, *items: tuple[str, int, int]) -> str:
        event = order(user_id, *items)
        partition = partition_for(user_id, PARTITIONS)
        offset = self.log.append_event(partition, event)
        return ConsistencyToken(partition, offset).encode()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    settings = QuerySettings(
        orders_topic_partitions=PARTITIONS, query_state_dir=tmp_path, query_batch_timeout_ms=10
    )
    log = FakeLog(settings.orders_topic, PARTITIONS)
    store = MemoryViewStore()
    app = create_app(
        settings,
        store=store,
        dead_letters=FakeDeadLetters(),
        consumer_factory=lambda: FakeConsumer(log),
        provision_topics=lambda: None,
    )
    with TestClient(app) as client:
        yield Harness(client, log, store)


def test_a_token_is_answered_once_its_offset_is_applied(harness: Harness) -> None:
    token = harness.place("alice", ("TEA", 499, 2), ("POT", 5001, 1))

    response = harness.client.get("/users/alice/items", params={"consistency_token": token})

    assert response.status_code == 200
    body = response.json()
    assert body["groups"]["cheap"]["lines"][0]["unit_price"] == "4.99"
    assert body["groups"]["cheap"]["item_count"] == 2
    assert body["groups"]["expensive"]["total"] == "50.01"
    assert body["groups"]["affordable"] == {"lines": [], "item_count": 0, "total": "0.00"}
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
    assert "query_events_applied_total 1.0" in harness.client.get("/metrics").text


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
    def broken(_: list[str]) -> list[None]:
        raise RuntimeError("disk on fire")

    harness.store.views = broken  # type: ignore[method-assign]
    client = TestClient(harness.client.app, raise_server_exceptions=False)

    response = client.get("/users/alice/items")

    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
