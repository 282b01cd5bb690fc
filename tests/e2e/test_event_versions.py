"""Changing the event as README tells operators to: query instances first, then writers.

A running system whose command service is restarted mid-traffic to write OrderPlaced v2 loses
nothing, counts nothing twice, and answers every read-your-writes token; a query service of the
previous release (which reads v1 only), run from that release's own source, pauses its
partition at the first v2 event and says so.
"""

from __future__ import annotations

import io
import itertools
import subprocess
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.environment import service_env
from devtools.processes import REPO, ServiceProcess
from query_service.view.partitioning import partition_for
from shared.events import V1_CHANNEL
from tests.e2e.query_support import OrderProducer
from tests.factories import order, order_v1
from tests.oracle import expected_views, served_groups
from tests.support import as_named_user, running_system, wait_for

pytestmark = pytest.mark.kafka

# The last commit whose query service reads OrderPlaced v1 only: "the previous release".
PREVIOUS_RELEASE = "3a3e759c5d97c9e82248dc8d79d1d5b550d4fb35"
USERS = ("upgrade-a", "upgrade-b", "upgrade-c")
ORDERS = 40
SWITCH_AFTER = 15


@dataclass(frozen=True)
class Acked:
    user: str
    order_id: str
    token: str
    items: tuple[tuple[str, int, int], ...]


def _body(n: int) -> tuple[str, dict[str, Any], tuple[tuple[str, int, int], ...]]:
    user = USERS[n % len(USERS)]
    items = ((f"S{n % 7}", 250 + 1000 * (n % 6), 1 + n % 3), ("COMMON", 5000, 1))
    lines = [
        {"sku": sku, "name": f"Item {sku}", "unit_price": f"{price / 100:.2f}", "quantity": qty}
        for sku, price, qty in items
    ]
    return user, {"user_id": user, "items": lines, "channel": "app"}, items


class Traffic(threading.Thread):
    """Orders one after another, each retried under its Idempotency-Key until acknowledged, as
    a client does while the command service restarts."""

    def __init__(self, url: str) -> None:
        super().__init__(name="traffic", daemon=True)
        self.url = url
        self.acked: list[Acked] = []
        self.retries = 0
        self.failure: str | None = None

    def run(self) -> None:
        auth = as_named_user()
        with httpx.Client(timeout=10, auth=auth) as client:
            for n in range(ORDERS):
                user, body, items = _body(n)
                key = f"upgrade-{n}"
                deadline = time.monotonic() + 60
                while True:
                    try:
                        answer = client.post(
                            f"{self.url}/orders", json=body, headers={"Idempotency-Key": key}
                        )
                    except httpx.TransportError:
                        answer = None
                    if answer is not None and answer.status_code == 201:
                        found = answer.json()
                        self.acked.append(
                            Acked(user, found["order_id"], found["consistency_token"], items)
                        )
                        break
                    if answer is not None and answer.status_code not in (429, 503):
                        self.failure = f"order {n}: {answer.status_code} {answer.text}"
                        return
                    if time.monotonic() > deadline:
                        self.failure = f"order {n} not acknowledged within 60 s"
                        return
                    self.retries += 1
                    time.sleep(0.05)
                time.sleep(0.02)


def test_writers_switched_to_v2_mid_traffic_lose_nothing_and_count_nothing_twice(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with running_system(kafka_bootstrap, tmp_path) as system:
        first = system.command
        traffic = Traffic(first.url)
        traffic.start()
        wait_for(lambda: len(traffic.acked) >= SWITCH_AFTER, 60, f"{SWITCH_AFTER} orders")
        first.stop()
        switched = ServiceProcess(
            "command_service",
            {**first.env, "COMMAND_EVENT_VERSION": "2"},
            first.log_path,
            port=first.port,
            ops_port=first.ops_port,
        )
        try:
            switched.start("/health/ready")
            traffic.join(120)
            assert traffic.failure is None, traffic.failure
            assert len(traffic.acked) == ORDERS

            query = httpx.Client(base_url=system.query.url, timeout=15, auth=as_named_user())
            for acked in traffic.acked:
                # Every token answers with its order in it.
                found = query.get(
                    f"/users/{acked.user}/orders/{acked.order_id}",
                    params={"consistency_token": acked.token, "wait_ms": 10_000},
                )
                assert found.status_code == 200, found.text
            channels = [
                query.get(f"/users/{a.user}/orders/{a.order_id}").json()["channel"]
                for a in (traffic.acked[0], traffic.acked[-1])
            ]
            # Before the switch written as v1 (no channel: read as the documented default),
            # after it as v2 with the channel the client named.
            assert channels == [V1_CHANNEL, "app"]

            events = [
                order(a.user, *a.items, order_id=uuid.UUID(a.order_id)) for a in traffic.acked
            ]
            expected = expected_views(events)
            for user in USERS:
                listed = query.get(f"/users/{user}/orders", params={"limit": 100}).json()
                ids = [o["order_id"] for o in listed["orders"]]
                assert len(ids) == len(set(ids)) == len(expected[user].order_ids)
                assert set(ids) == set(expected[user].order_ids)

                def items(params: dict[str, Any], user: str = user) -> Any:
                    return query.get(f"/users/{user}/items", params=params).json()

                assert served_groups(items) == expected[user].groups
        finally:
            switched.stop()


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's source, extracted from this repository's history."""
    where = tmp_path_factory.mktemp("previous-release")
    archive = subprocess.run(
        ["git", "archive", PREVIOUS_RELEASE, "query_service", "shared", "web"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    return where


def test_a_query_service_of_the_previous_release_pauses_at_a_v2_event_and_says_so(
    kafka_bootstrap: str, tmp_path: Path, previous_release: Path
) -> None:
    env = service_env(kafka_bootstrap, tmp_path / "state")
    old = ServiceProcess("query_service", env, tmp_path / "old.log", cwd=previous_release)
    old.start("/health/ready")
    producer = OrderProducer(kafka_bootstrap, env["ORDERS_TOPIC"])
    user = "old-reader"
    partition = partition_for(user, 6)
    others = (f"other-{i}" for i in itertools.count())
    other = next(u for u in others if partition_for(u, 6) != partition)
    try:
        read = producer.place(order_v1(user, ("OLD", 100, 1)))
        producer.place(order(user, ("NEW", 100, 1)))
        elsewhere = producer.place(order_v1(other, ("ELSEWHERE", 100, 1)))
        client = httpx.Client(base_url=old.url, timeout=10, auth=as_named_user())
        assert client.get(f"/users/{user}/items", params={"consistency_token": read}).is_success
        assert client.get(
            f"/users/{other}/items", params={"consistency_token": elsewhere}
        ).is_success

        def paused() -> dict[str, Any] | None:
            ready = client.get("/health/ready")
            state: dict[str, Any] = ready.json()["partitions"][str(partition)]
            return state if ready.status_code == 503 and state.get("paused") else None

        state = wait_for(paused, 30, "the old reader to pause")
        assert "schema_version 2 is newer than this service understands" in state["paused"]
        assert state["applied_offset"] == int(read.rsplit(":", 1)[1])
        assert "upgrade the query service" in old.log_tail(100)
    finally:
        old.stop()
