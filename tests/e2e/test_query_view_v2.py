"""View v2 end to end: a user with 20,000 orders is served fast and small, over REST and SSE, and
read-your-writes still holds for them; a state dir of the first format is rebuilt, never read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rocksdict import Options, Rdict

from devtools.environment import service_env
from devtools.processes import ServiceProcess
from shared.events import OrderPlaced
from tests.e2e.query_support import OrderProducer, sse_events
from tests.factories import order
from tests.oracle import expected_views, served_groups
from tests.support import as_named_user

pytestmark = pytest.mark.kafka

BIG_USER_ORDERS = 20_000
SKUS = 400
PAGE_BYTES = 64 * 1024


@pytest.fixture
def big_user(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[str, OrderProducer]]:
    env = service_env(kafka_bootstrap, tmp_path / "state")
    producer = OrderProducer(kafka_bootstrap, env["ORDERS_TOPIC"])
    for i in range(BIG_USER_ORDERS):
        producer.send(order("business", (f"SKU-{i % SKUS:04d}", 100 + (i % 7) * 1000, 1)))
    token = producer.flush()
    service = ServiceProcess("query_service", env, tmp_path / "query.log").start(
        "/health/ready", 180
    )
    try:
        with httpx.Client(base_url=service.url, timeout=30, auth=as_named_user()) as client:
            caught_up = client.get(
                "/users/business/items", params={"consistency_token": token, "wait_ms": 30_000}
            )
            assert caught_up.status_code == 200, caught_up.text
        yield service.url, producer
    finally:
        service.stop()


def test_a_user_with_20000_orders_gets_small_pages_and_reads_their_writes(
    big_user: tuple[str, OrderProducer],
) -> None:
    url, producer = big_user
    with httpx.Client(base_url=url, timeout=30, auth=as_named_user()) as client:
        first = client.get("/users/business/items")
        assert first.status_code == 200
        assert len(first.content) <= PAGE_BYTES
        body = first.json()
        groups = body["groups"]
        assert sum(g["item_count"] for g in groups.values()) == BIG_USER_ORDERS
        assert all(len(g["lines"]) <= 50 for g in groups.values())
        # Order i buys sku i % 400 at price index i % 7: as 400 % 7 == 1, every sku at all 7.
        assert sum(g["line_count"] for g in groups.values()) == SKUS * 7
        assert groups["cheap"]["next_cursor"] is not None
        orders = client.get("/users/business/orders", params={"limit": 100})
        assert len(orders.content) <= PAGE_BYTES
        assert len(orders.json()["orders"]) == 100

        placed = order("business", ("NEWEST", 4242, 3))
        token = producer.place(placed)
        after = client.get(
            "/users/business/items", params={"consistency_token": token, "group": "affordable"}
        ).json()
        assert after["groups"]["affordable"]["item_count"] == (
            groups["affordable"]["item_count"] + 3
        )
        newest = client.get(
            "/users/business/orders", params={"consistency_token": token, "limit": 1}
        )
        assert newest.json()["orders"][0]["order_id"] == str(placed.order_id)

        with client.stream("GET", "/users/business/items/stream", timeout=30) as stream:
            events = sse_events(stream)
            snapshot = next(events)
            assert snapshot["event"] == "snapshot"
            assert len(snapshot["data"]) <= PAGE_BYTES
            token = producer.place(order("business", ("LIVE", 99, 1)))
            delta = next(events)
            assert delta["event"] == "delta"
            assert len(delta["data"]) < 1024  # only what changed: one line, one summary
            assert json.loads(delta["data"])["lines"][0]["sku"] == "LIVE"


def test_a_state_dir_of_the_first_format_is_rebuilt_from_the_log(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = service_env(kafka_bootstrap, tmp_path / "state")
    producer = OrderProducer(kafka_bootstrap, env["ORDERS_TOPIC"])
    events: list[OrderPlaced] = [
        order(f"old-{i % 5}", ("PEN", 499, 1), ("LAMP", 6000, 2)) for i in range(40)
    ]
    for event in events:
        producer.send(event)
    producer.flush()
    # What the first format left: one database for the whole view, one record per user view,
    # its offsets claiming everything is applied (a view that must never be served).
    old = tmp_path / "state" / "view-old"
    db = Rdict(str(old), Options(raw_mode=True))
    db[b"m:topic"] = env["ORDERS_TOPIC"].encode()
    db[b"v:old-0"] = b'{"groups": {}, "order_ids": []}'
    for partition in range(6):
        db[b"p:%d" % partition] = b"999"
    db.close()
    (tmp_path / "state" / "current").symlink_to("view-old")

    service = ServiceProcess("query_service", env, tmp_path / "query.log").start(
        "/health/ready", 120
    )
    try:
        assert "older format" in service.log_tail(200)
        assert (tmp_path / "state" / "current").resolve() != old
        assert old.exists()  # left for the operator
        expected = expected_views(events)
        with httpx.Client(base_url=service.url, timeout=30, auth=as_named_user()) as client:
            for user in expected:
                served = served_groups(
                    lambda params, u=user: client.get(f"/users/{u}/items", params=params).json()
                )
                assert served == expected[user].groups
    finally:
        service.stop()
