"""docker-compose.yml started for real and driven end to end over 127.0.0.1 (`make compose-test`):
a user signs in at the compose issuer, orders, and reads the order back from both query
instances and on the live stream; the broker refuses clients without TLS or with a wrong
password; one query instance stopped, the other answers; `down` and `up` keep the orders.

Needs a Docker engine and the compose plugin (compose/test.sh provides both); without them every
test here fails, saying why. Tests run in file order against one stack.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from devtools.compose import (
    COMMAND_URL,
    ISSUER_URL,
    KAFKA_EXTERNAL,
    PLUGIN_DIR,
    QUERY_URLS,
    READY_SERVICES,
    ComposeStack,
    fresh_secrets,
)
from devtools.oidc import sign_in
from tests.e2e.query_support import sse_events
from tests.support import wait_for

# Each `up` may wait up to 7 minutes for health on a loaded machine (devtools/compose.py).
pytestmark = [pytest.mark.compose, pytest.mark.timeout(1200)]

USER = "alice"
PAGE = QUERY_URLS[0] + "/"
TIMINGS = PLUGIN_DIR / "timings.log"


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    stack = ComposeStack(fresh_secrets())
    stack.down(volumes=True)  # whatever an interrupted run left behind
    started = time.monotonic()
    stack.build()
    built = time.monotonic() - started
    try:
        timed_up(stack, f"first up: build {built:.1f} s, `up` to ready")
        yield stack
    finally:
        stack.down(volumes=True)


def timed_up(stack: ComposeStack, label: str) -> None:
    """`up`, and how long it took to ready, with each container's start (and finish) after it."""
    began = time.time()
    took = stack.up()
    marks = sorted(stack.timeline().items(), key=lambda mark: mark[1][0])
    steps = ", ".join(
        f"{service} +{start - began:.0f}" + ("" if end is None else f"..+{end - began:.0f}")
        for service, (start, end) in marks
    )
    record(f"{label} {took:.1f} s ({steps})")


def record(line: str) -> None:
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    with TIMINGS.open("a") as log:
        log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}\n")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def token(stack: ComposeStack) -> str:
    return sign_in(ISSUER_URL, USER, PAGE)


def place(token: str, sku: str) -> dict[str, Any]:
    """Order two of `sku` through the command service; its answer (order id, token)."""
    response = httpx.post(
        f"{COMMAND_URL}/orders",
        json={"items": [{"sku": sku, "name": sku.title(), "unit_price": "2.50", "quantity": 2}]},
        headers=bearer(token),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


@pytest.fixture(scope="module")
def placed(token: str) -> dict[str, Any]:
    return place(token, "INK")


def read_order(query_url: str, token: str, order: dict[str, Any]) -> httpx.Response:
    return httpx.get(
        f"{query_url}/users/{USER}/orders/{order['order_id']}",
        params={"consistency_token": order["consistency_token"], "wait_ms": 10_000},
        headers=bearer(token),
        timeout=30,
    )


def test_every_service_is_healthy_and_ready(stack: ComposeStack) -> None:
    states = stack.states()
    for service in READY_SERVICES:
        assert states.get(service) == "healthy", states
    assert states.get("kafka-init") == states.get("kafka-acls") == "exited", states
    for url in (COMMAND_URL, *QUERY_URLS):
        assert httpx.get(f"{url}/health/ready", timeout=10).status_code == 200, url


def test_the_issuer_is_the_one_the_services_trust(stack: ComposeStack) -> None:
    discovery = httpx.get(f"{ISSUER_URL}/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == ISSUER_URL
    page = httpx.get(f"{QUERY_URLS[0]}/config.json", timeout=10).json()
    assert page["auth"]["issuer"] == ISSUER_URL


def test_a_request_without_a_token_is_refused(stack: ComposeStack) -> None:
    assert httpx.get(f"{QUERY_URLS[0]}/users/{USER}/orders", timeout=10).status_code == 401
    response = httpx.post(f"{COMMAND_URL}/orders", json={"items": []}, timeout=10)
    assert response.status_code == 401


def test_a_signed_in_user_reads_the_order_from_each_query_instance(
    token: str, placed: dict[str, Any]
) -> None:
    for query_url in QUERY_URLS:
        response = read_order(query_url, token, placed)
        assert response.status_code == 200, (query_url, response.text)
        order = response.json()
        assert order["user_id"] == USER
        assert [(item["sku"], item["quantity"]) for item in order["items"]] == [("INK", 2)]


def test_the_order_is_on_the_live_stream_and_so_is_the_next(
    token: str, placed: dict[str, Any]
) -> None:
    with httpx.stream(
        "GET", f"{QUERY_URLS[1]}/users/{USER}/items/stream", headers=bearer(token), timeout=30
    ) as response:
        assert response.status_code == 200, response.read()
        events = sse_events(response)
        snapshot = next(events)
        assert snapshot["event"] == "snapshot"
        assert '"INK"' in snapshot["data"]
        following = place(token, "PAPER")
        change = next(events)
    assert change["event"] == "delta"
    assert '"PAPER"' in change["data"]
    assert f"v1:{change['id']}" == following["consistency_token"]


def test_the_broker_refuses_a_client_without_tls(stack: ComposeStack) -> None:
    errors: list[KafkaError] = []
    config: dict[str, Any] = {
        "bootstrap.servers": KAFKA_EXTERNAL,
        "security.protocol": "PLAINTEXT",
        "error_cb": errors.append,
    }
    client = AdminClient(config)
    with pytest.raises(KafkaException):
        client.list_topics(timeout=5)
    # The broker hangs up on plaintext: the client sees all brokers down, never a topic.
    wait_for(lambda: reported(client, errors, KafkaError._ALL_BROKERS_DOWN), 10, "brokers down")


def test_the_broker_refuses_a_wrong_password(stack: ComposeStack, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(stack.exec("command-service", "cat", "/etc/kafka/ca/ca.pem"))

    def admin(password: str, errors: list[KafkaError]) -> AdminClient:
        config: dict[str, Any] = {
            "bootstrap.servers": KAFKA_EXTERNAL,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "query",
            "sasl.password": password,
            "ssl.ca.location": str(ca),
            "error_cb": errors.append,
        }
        return AdminClient(config)

    refused: list[KafkaError] = []
    client = admin("not-the-password", refused)
    with pytest.raises(KafkaException):
        client.list_topics(timeout=5)
    wait_for(lambda: reported(client, refused, KafkaError._AUTHENTICATION), 10, "auth failure")
    # The same client with the right password is let in: the refusal was the password's.
    accepted: list[KafkaError] = []
    topics = admin(stack.env["KAFKA_QUERY_PASSWORD"], accepted).list_topics(timeout=20).topics
    assert "orders" in topics


def reported(client: AdminClient, errors: list[KafkaError], code: int) -> bool:
    """Whether the client's error callback (served by poll) has reported `code`."""
    client.poll(0.2)
    return any(error.code() == code for error in errors)


def test_with_the_first_query_instance_stopped_the_other_answers_every_read(
    stack: ComposeStack, token: str, placed: dict[str, Any]
) -> None:
    stack.stop("query-service")
    try:
        assert stack.states()["query-service"] == "exited"
        second = QUERY_URLS[1]
        assert read_order(second, token, placed).status_code == 200
        orders = httpx.get(f"{second}/users/{USER}/orders", headers=bearer(token), timeout=30)
        assert orders.status_code == 200, orders.text
        assert placed["order_id"] in [o["order_id"] for o in orders.json()["orders"]]
        items = httpx.get(f"{second}/users/{USER}/items", headers=bearer(token), timeout=30)
        assert items.status_code == 200, items.text
        # Other users' partitions too: every partition is held by both instances.
        for user in ("bob", "carol"):
            other = sign_in(ISSUER_URL, user, PAGE)
            response = httpx.get(f"{second}/users/{user}/orders", headers=bearer(other), timeout=30)
            assert response.status_code == 200, (user, response.text)
    finally:
        stack.start(["query-service"])


def test_down_and_up_again_keeps_the_orders(
    stack: ComposeStack, token: str, placed: dict[str, Any]
) -> None:
    stack.down(volumes=False)
    timed_up(stack, "down, then (volumes kept) `up` to ready")
    # The issuer's keys are in a volume too: a token from before still verifies.
    for query_url in QUERY_URLS:
        response = read_order(query_url, token, placed)
        assert response.status_code == 200, (query_url, response.text)
    again = sign_in(ISSUER_URL, USER, PAGE)
    orders = httpx.get(f"{QUERY_URLS[0]}/users/{USER}/orders", headers=bearer(again), timeout=30)
    assert placed["order_id"] in [o["order_id"] for o in orders.json()["orders"]]
