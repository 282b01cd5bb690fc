"""The query service as a real process against a real broker: read-your-writes, the API's
contract, SSE, readiness, restart without replay, and rebuilds (from an empty dir and the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.environment import service_env
from devtools.processes import ServiceProcess
from kafka_local.broker import LocalBroker, free_port
from query_service.view.partitioning import partition_for
from tests.e2e.query_support import OrderProducer, metric, sse_events
from tests.factories import order
from tests.support import as_named_user, operator_headers, wait_for

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def env(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return service_env(kafka_bootstrap, tmp_path_factory.mktemp("query") / "state")


@pytest.fixture(scope="module")
def producer(kafka_bootstrap: str, env: dict[str, str]) -> OrderProducer:
    return OrderProducer(kafka_bootstrap, env["ORDERS_TOPIC"])


@pytest.fixture(scope="module")
def service(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process = ServiceProcess("query_service", env, tmp_path_factory.mktemp("logs") / "query.log")
    process.start("/health/ready")
    try:
        yield process.url
    finally:
        process.stop()


def items(url: str, user_id: str, **params: str | int) -> httpx.Response:
    return httpx.get(
        f"{url}/users/{user_id}/items", params=params, timeout=40, auth=as_named_user()
    )


def test_read_your_writes_100_times_in_a_row(service: str, producer: OrderProducer) -> None:
    for i in range(100):
        placed = order("ryw-user", (f"SKU-{i}", 250, 1))
        token = producer.place(placed)
        response = items(service, "ryw-user", consistency_token=token, limit=500)
        assert response.status_code == 200, response.text
        lines = response.json()["groups"]["cheap"]["lines"]
        assert f"SKU-{i}" in {line["sku"] for line in lines}
        assert response.json()["groups"]["cheap"]["item_count"] == i + 1
        assert response.json()["groups"]["cheap"]["line_count"] == i + 1


def test_the_token_header_works_too(service: str, producer: OrderProducer) -> None:
    token = producer.place(order("header-user", ("H", 100, 1)))
    response = httpx.get(
        f"{service}/users/header-user/items",
        headers={"X-Consistency-Token": token},
        timeout=10,
        auth=as_named_user(),
    )
    assert response.status_code == 200
    assert response.json()["groups"]["cheap"]["item_count"] == 1


def test_groups_totals_and_narrowing(service: str, producer: OrderProducer) -> None:
    producer.place(order("grp-user", ("PEN", 499, 3), ("MUG", 500, 1), ("BIG", 5000, 2)))
    token = producer.place(order("grp-user", ("LAMP", 5001, 2), ("PEN", 499, 1)))
    body = items(service, "grp-user", consistency_token=token).json()
    cheap, affordable, expensive = (body["groups"][g] for g in ("cheap", "affordable", "expensive"))
    assert cheap["item_count"] == 4
    assert cheap["total"] == "19.96"
    assert [
        (ln["sku"], ln["unit_price"], ln["quantity"], ln["order_count"]) for ln in cheap["lines"]
    ] == [("PEN", "4.99", 4, 2)]
    assert affordable["item_count"] == 3
    assert affordable["total"] == "105.00"
    assert expensive["item_count"] == 2
    assert expensive["total"] == "100.02"
    assert body["consistency_token"].startswith("v1:")

    narrowed = items(service, "grp-user", group="expensive", consistency_token=token).json()
    assert list(narrowed["groups"]) == ["expensive"]
    assert narrowed["groups"]["expensive"] == expensive
    assert items(service, "grp-user", group="pricey").status_code == 422


def test_a_user_without_orders_has_empty_groups(service: str) -> None:
    body = items(service, "nobody-" + uuid.uuid4().hex[:8]).json()
    assert {g: (v["lines"], v["item_count"], v["total"]) for g, v in body["groups"].items()} == {
        g: ([], 0, "0.00") for g in ("cheap", "affordable", "expensive")
    }


def test_order_endpoint_and_404(service: str, producer: OrderProducer) -> None:
    placed = order("ord-user", ("A", 120, 2), ("B", 7000, 1))
    token = producer.place(placed)
    url = f"{service}/users/ord-user/orders/{placed.order_id}"
    body = httpx.get(
        url, params={"consistency_token": token}, timeout=10, auth=as_named_user()
    ).json()
    assert body["order_id"] == str(placed.order_id)
    assert body["user_id"] == "ord-user"
    got = [(i["sku"], i["unit_price"], i["quantity"], i["price_group"]) for i in body["items"]]
    assert got == [("A", "1.20", 2, "cheap"), ("B", "70.00", 1, "expensive")]
    unknown = httpx.get(
        f"{service}/users/ord-user/orders/{uuid.uuid4()}", timeout=10, auth=as_named_user()
    )
    assert unknown.status_code == 404
    other_user = httpx.get(
        f"{service}/users/someone-else/orders/{placed.order_id}", timeout=10, auth=as_named_user()
    )
    assert other_user.status_code == 404
    assert (
        httpx.get(
            f"{service}/users/ord-user/orders/not-a-uuid", timeout=10, auth=as_named_user()
        ).status_code
        == 422
    )


def test_a_token_ahead_of_the_view_gets_503_not_a_stale_answer(service: str) -> None:
    partition = partition_for("ryw-user", 6)
    token = f"v1:{partition}:999999999"
    response = items(service, "ryw-user", consistency_token=token, wait_ms=200)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    body = response.json()
    assert body["partition"] == partition
    assert body["requested_offset"] == 999999999
    assert body["applied_offset"] < 999999999
    assert metric(service, "query_read_your_writes_waiters") == 0


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"consistency_token": "garbage"}, 400),
        ({"consistency_token": "v1:x:1"}, 400),
        ({"consistency_token": "v1:6:1"}, 400),
        # Another partition's token says nothing of this user's view.
        ({"consistency_token": f"v1:{(partition_for('ryw-user', 6) + 1) % 6}:1"}, 400),
        ({"consistency_token": "v1:0:1", "wait_ms": 30001}, 422),
        ({"wait_ms": -1}, 422),
    ],
)
def test_bad_tokens_and_waits_are_refused(
    service: str, params: dict[str, str | int], status: int
) -> None:
    response = items(service, "ryw-user", **params)
    assert response.status_code == status, response.text
    assert "detail" in response.json()


def test_sse_sends_the_view_then_each_change_and_cleans_up(
    service: str, producer: OrderProducer
) -> None:
    first_token = producer.place(order("sse-user", ("S", 100, 1)))
    items(service, "sse-user", consistency_token=first_token)
    with httpx.stream(
        "GET", f"{service}/users/sse-user/items/stream", timeout=20, auth=as_named_user()
    ) as response:
        assert response.status_code == 200
        stream = sse_events(response)
        snapshot = next(stream)
        assert snapshot["event"] == "snapshot"
        first = httpx.Response(200, content=snapshot["data"]).json()
        assert first["groups"]["cheap"]["item_count"] == 1
        assert metric(service, "query_sse_subscribers") == 1
        placed = order("sse-user", ("T", 6000, 2))
        token = producer.place(placed)
        change = next(stream)
        assert change["event"] == "delta"
        delta = httpx.Response(200, content=change["data"]).json()
        assert delta["groups"] == {
            "expensive": {"item_count": 2, "total": "120.00", "line_count": 1}
        }
        assert [(ln["sku"], ln["quantity"], ln["group"]) for ln in delta["lines"]] == [
            ("T", 2, "expensive")
        ]
        assert f"v1:{change['id']}" == token
    wait_for(lambda: metric(service, "query_sse_subscribers") == 0, 10, "the subscriber to go")


def test_metrics_expose_the_view_position(service: str) -> None:
    text = httpx.get(f"{service}/metrics", timeout=5, headers=operator_headers()).text
    for name in (
        "query_applied_offset{",
        "query_events_applied_total",
        "query_batch_size_bucket",
        "query_request_seconds_bucket",
        "query_partition_lag{",
    ):
        assert name in text


def test_an_empty_state_dir_rebuilds_the_same_view(
    service: str, env: dict[str, str], tmp_path: Path, producer: OrderProducer
) -> None:
    token = producer.place(order("grp-user", ("LATE", 4242, 1)))
    before = items(service, "grp-user", consistency_token=token).json()
    fresh = ServiceProcess(
        "query_service",
        {
            **env,
            "QUERY_STATE_DIR": str(tmp_path / "fresh"),
            "QUERY_CONSUMER_GROUP": f"fresh-{uuid.uuid4().hex[:6]}",
            # A cluster of its own, so that it builds every partition itself.
            "QUERY_MEMBERS_TOPIC": f"{env['ORDERS_TOPIC']}.fresh-members",
        },
        tmp_path / "fresh.log",
    )
    fresh.start("/health/ready")
    try:
        for user in ("grp-user", "ryw-user", "sse-user", "ord-user"):
            answer = items(fresh.url, user)
            assert answer.headers["X-Served-By"] != items(service, user).headers["X-Served-By"]
            assert answer.json() == items(service, user).json()
        assert items(fresh.url, "grp-user").json() == before
    finally:
        fresh.stop()


def test_cli_rebuild_swaps_in_the_same_view_while_the_old_one_serves(
    env: dict[str, str], tmp_path: Path, producer: OrderProducer
) -> None:
    # A service of its own, so it can be restarted onto the rebuilt view.
    own = {
        **env,
        "QUERY_STATE_DIR": str(tmp_path / "state"),
        "QUERY_CONSUMER_GROUP": f"cli-{uuid.uuid4().hex[:6]}",
        # A cluster of its own: not one with the module's service on the same topic.
        "QUERY_MEMBERS_TOPIC": f"{env['ORDERS_TOPIC']}.cli-members",
    }
    first = ServiceProcess("query_service", own, tmp_path / "serve.log").start("/health/ready")
    try:
        old_current = (tmp_path / "state" / "current").resolve()
        users = ("grp-user", "ryw-user", "sse-user", "ord-user")
        before = {user: items(first.url, user).json() for user in users}
        result = subprocess.run(
            [sys.executable, "-m", "query_service", "rebuild"],
            env={**os.environ, **own},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "events" in result.stderr  # the tqdm bar
        new_current = (tmp_path / "state" / "current").resolve()
        assert new_current != old_current
        # The running service keeps serving (and updating) the version it has open.
        token = producer.place(order("grp-user", ("WHILE", 100, 1)))
        assert items(first.url, "grp-user", consistency_token=token).status_code == 200
    finally:
        first.stop()
    second = ServiceProcess("query_service", own, tmp_path / "serve2.log").start("/health/ready")
    try:
        after = {user: items(second.url, user).json() for user in users}
        after["grp-user"] = items(second.url, "grp-user", consistency_token=token).json()
        assert {u: v["groups"] for u, v in after.items() if u != "grp-user"} == {
            u: v["groups"] for u, v in before.items() if u != "grp-user"
        }
        assert after["grp-user"]["groups"]["cheap"]["item_count"] == (
            before["grp-user"]["groups"]["cheap"]["item_count"] + 1
        )
    finally:
        second.stop()


def test_ready_only_after_catching_up_and_a_restart_replays_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = service_env(kafka_bootstrap, tmp_path / "state")
    producer = OrderProducer(kafka_bootstrap, env["ORDERS_TOPIC"])
    backlog = 30_000
    for i in range(backlog):
        producer.send(order(f"backlog-{i % 500}", ("B", 100 + i % 9000, 1)))
    producer.flush()
    ends: dict[int, int] = {}
    for partition, offset in producer.landed:
        ends[partition] = max(ends.get(partition, -1), offset)

    service = ServiceProcess("query_service", env, tmp_path / "first.log").start("/health/live")
    try:
        first = httpx.get(f"{service.url}/health/ready", timeout=5)
        assert first.status_code == 503
        ready = wait_for(lambda: _ready(service), 120, "catching up with the backlog")
        applied = {int(p): o for p, o in ready["applied_offsets"].items()}
        assert all(applied.get(p, -1) >= o for p, o in ends.items())
        assert metric(service.url, "query_events_applied_total") == backlog
    finally:
        service.stop()

    restarted = ServiceProcess("query_service", env, tmp_path / "second.log").start("/health/live")
    try:
        wait_for(lambda: _ready(restarted), 15, "ready after a restart")
        assert metric(restarted.url, "query_events_applied_total") == 0
        body = items(restarted.url, "backlog-7").json()
        assert sum(g["item_count"] for g in body["groups"].values()) == backlog // 500
    finally:
        restarted.stop()


def _ready(service: ServiceProcess) -> dict[str, object] | None:
    response = httpx.get(f"{service.url}/health/ready", timeout=5)
    return response.json() if response.status_code == 200 else None


def test_without_kafka_it_refuses_reads_boundedly_and_is_not_ready(tmp_path: Path) -> None:
    env = service_env(f"127.0.0.1:{free_port()}", tmp_path / "state")
    service = ServiceProcess(
        "query_service", {**env, "QUERY_KAFKA_RETRY_S": "0.5"}, tmp_path / "q.log"
    )
    service.start("/health/live")
    try:
        assert httpx.get(f"{service.url}/health/ready", timeout=5).status_code == 503
        # No copy of any partition is known to be caught up: a bounded wait, then 503.
        refused = items(service.url, "anyone", wait_ms=300)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        wait_for(lambda: "retrying" in service.log_tail(200), 30, "a retry in the log")
        assert httpx.get(f"{service.url}/health/live", timeout=5).status_code == 200
    finally:
        service.stop()


def test_after_a_broker_restart_reads_without_a_token_are_served_again(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    """A read without a token needs a lease (README, "Reads without a token are fresh within a
    lease"), which reads the log's end each heartbeat: after the broker restarts, that read must
    work again (librdkafka's admin ListOffsets did not: it failed with FENCED_LEADER_EPOCH for
    good, and every such read got 503)."""
    env = service_env(own_broker.bootstrap_servers, tmp_path / "state")
    producer = OrderProducer(own_broker.bootstrap_servers, env["ORDERS_TOPIC"])
    producer.place(order("restart", ("PEN", 99, 1)))
    service = ServiceProcess("query_service", env, tmp_path / "q.log").start("/health/ready")
    try:
        wait_for(lambda: items(service.url, "restart").status_code == 200, 30, "a first read")
        own_broker.stop()
        own_broker.start()
        producer = OrderProducer(own_broker.bootstrap_servers, env["ORDERS_TOPIC"])
        producer.place(order("restart", ("MUG", 500, 1)))

        def served_whole() -> bool:
            answer = items(service.url, "restart", wait_ms=1000)
            return (
                answer.status_code == 200
                and answer.json()["groups"]["affordable"]["item_count"] == 1
            )

        wait_for(served_whole, 60, "a read without a token after the restart")
    finally:
        service.stop()
