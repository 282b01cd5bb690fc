"""The command service's HTTP API with a fake publisher: every answer but Kafka's own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from command_service.app import create_app
from command_service.exceptions import PublishUnavailable
from command_service.settings import CommandSettings
from devtools.fakes import InMemoryPublisher
from devtools.issuer import TestIssuer
from shared.events import decode

ORDER: dict[str, Any] = {
    "user_id": "alice",
    "items": [
        {"sku": "TEA-1", "name": "Tea", "unit_price": "4.99", "quantity": 2},
        {"sku": "POT-1", "name": "Teapot", "unit_price": 50.01, "quantity": 1},
    ],
}


@pytest.fixture
def publisher() -> InMemoryPublisher:
    return InMemoryPublisher(partition=2)


def _client(publisher: InMemoryPublisher, issuer: TestIssuer, **settings: Any) -> TestClient:
    """The app as alice's client sees it: her bearer token on every request."""
    app = create_app(CommandSettings(**settings), publisher, provision_topic=lambda: None)
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {issuer.mint('alice')}"
    return client


def _operator(issuer: TestIssuer) -> dict[str, str]:
    return issuer.headers("ops", ["orders:read-any"])


@pytest.fixture
def client(publisher: InMemoryPublisher, issuer: TestIssuer) -> Iterator[TestClient]:
    with _client(publisher, issuer) as client:
        yield client


def test_lifespan_starts_and_closes_the_publisher(
    publisher: InMemoryPublisher, issuer: TestIssuer
) -> None:
    with _client(publisher, issuer):
        assert publisher.started
    assert publisher.closed


def test_accepted_order_shape_and_token(client: TestClient, publisher: InMemoryPublisher) -> None:
    response = client.post("/orders", json=ORDER)
    assert response.status_code == 201
    body = response.json()
    assert response.headers["X-Consistency-Token"] == body["consistency_token"] == "v1:2:0"
    assert body["user_id"] == "alice"
    assert body["currency"] == "GBP"
    assert body["channel"] == "api"
    assert body["placed_at"].endswith("Z")
    assert body["items"] == [
        {
            "sku": "TEA-1",
            "name": "Tea",
            "unit_price": "4.99",
            "quantity": 2,
            "price_group": "cheap",
        },
        {
            "sku": "POT-1",
            "name": "Teapot",
            "unit_price": "50.01",
            "quantity": 1,
            "price_group": "expensive",
        },
    ]
    key, value, headers = publisher.records[0]
    event = decode(value)
    assert key == b"alice"
    assert str(event.order_id) == body["order_id"]
    assert [i.unit_price.amount_minor for i in event.items] == [499, 5001]
    # Version 1 until the operator switches (COMMAND_EVENT_VERSION): what a reader of the
    # previous release folds.
    assert json.loads(value)["schema_version"] == 1
    assert dict(headers) == {"event_type": b"OrderPlaced", "schema_version": b"1"}


def test_version_2_is_written_once_switched_with_the_channel_the_client_named(
    publisher: InMemoryPublisher, issuer: TestIssuer
) -> None:
    with _client(publisher, issuer, command_event_version=2) as client:
        answer = client.post("/orders", json={**ORDER, "channel": "app"})
    assert answer.status_code == 201
    assert answer.json()["channel"] == "app"
    _, value, headers = publisher.records[0]
    written = json.loads(value)
    assert written["schema_version"] == 2
    assert written["channel"] == "app"
    assert written["items"][0]["unit_price"] == {"amount_minor": 499, "currency": "GBP"}
    assert dict(headers) == {"event_type": b"OrderPlaced", "schema_version": b"2"}


def test_an_unknown_channel_and_an_unwritable_version_are_refused(
    client: TestClient, publisher: InMemoryPublisher
) -> None:
    issues = _issues(client.post("/orders", json={**ORDER, "channel": "fax"}))
    assert issues[0]["loc"] == ["channel"]
    assert publisher.records == []
    with pytest.raises(ValueError, match="must be one of 1, 2"):
        CommandSettings(command_event_version=3)


def test_same_idempotency_key_gives_the_same_order_id(client: TestClient) -> None:
    first = client.post("/orders", json=ORDER, headers={"Idempotency-Key": "k-1"}).json()
    again = client.post("/orders", json=ORDER, headers={"Idempotency-Key": "k-1"}).json()
    other = client.post("/orders", json=ORDER, headers={"Idempotency-Key": "k-2"}).json()
    assert first["order_id"] == again["order_id"] != other["order_id"]


def test_body_over_64_kib_is_413_by_content_length(client: TestClient) -> None:
    response = client.post(
        "/orders", content=b" " * (64 * 1024 + 1), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "larger than 65536 bytes" in response.json()["detail"]


def test_body_over_64_kib_is_413_when_streamed_without_length(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(80):
            yield b" " * 1024

    response = client.post(
        "/orders", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


def test_body_of_exactly_64_kib_is_read(client: TestClient) -> None:
    raw = json.dumps(ORDER).encode()
    padded = raw + b" " * (64 * 1024 - len(raw))
    response = client.post("/orders", content=padded, headers={"Content-Type": "application/json"})
    assert response.status_code == 201


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_non_json_bodies_are_415(client: TestClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/orders", content=json.dumps(ORDER), headers=headers)
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


def test_json_with_charset_is_accepted(client: TestClient) -> None:
    response = client.post(
        "/orders",
        content=json.dumps(ORDER),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201


@pytest.mark.parametrize("raw", [b"{", b"", b"{'a': 1}", b"[NaN]", b"\xff"])
def test_malformed_json_is_400(client: TestClient, raw: bytes) -> None:
    response = client.post("/orders", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["detail"]


def _issues(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    issues: list[dict[str, Any]] = response.json()["detail"]
    return issues


def test_unknown_field_is_422(client: TestClient) -> None:
    issues = _issues(client.post("/orders", json={**ORDER, "coupon": "FREE"}))
    assert issues == [
        {"loc": ["coupon"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}
    ]


def test_other_currencies_are_422_saying_only_gbp(client: TestClient) -> None:
    issues = _issues(client.post("/orders", json={**ORDER, "currency": "USD"}))
    assert issues[0]["loc"] == ["currency"]
    assert "only GBP is supported" in issues[0]["msg"]


@pytest.mark.parametrize("key", [b"a b", b"x" * 129, "caf\u00e9".encode("latin-1")])
def test_bad_idempotency_key_is_422(client: TestClient, key: bytes) -> None:
    response = client.post("/orders", json=ORDER, headers=[(b"Idempotency-Key", key)])
    assert "Idempotency-Key" in _issues(response)[0]["msg"]


def test_price_with_three_decimals_is_422_with_a_readable_message(client: TestClient) -> None:
    order = {**ORDER, "items": [{**ORDER["items"][0], "unit_price": 4.999}]}
    issues = _issues(client.post("/orders", json=order))
    assert issues[0]["loc"] == ["items", 0, "unit_price"]
    assert "2 decimal places" in issues[0]["msg"]


def test_publish_failure_is_503_with_retry_after(
    client: TestClient, publisher: InMemoryPublisher, issuer: TestIssuer
) -> None:
    publisher.failure = PublishUnavailable("Local: Message timed out")
    response = client.post("/orders", json=ORDER)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "timed out" in response.json()["detail"]
    assert "orders_unavailable_total 1.0" in client.get("/metrics", headers=_operator(issuer)).text


def test_a_true_bug_is_a_json_500(client: TestClient, publisher: InMemoryPublisher) -> None:
    publisher.failure = ZeroDivisionError("a bug")
    response = client.post("/orders", json=ORDER)
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}


def test_health(client: TestClient, publisher: InMemoryPublisher) -> None:
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200
    publisher.ready = False
    not_ready = client.get("/health/ready")
    assert not_ready.status_code == 503
    assert not_ready.json()["detail"] == "in memory, no Kafka"


def test_metrics_count_outcomes(client: TestClient, issuer: TestIssuer) -> None:
    client.post("/orders", json=ORDER)
    client.post("/orders", content=b"{", headers={"Content-Type": "application/json"})
    client.post("/orders", content=b"{}", headers={"Content-Type": "text/plain"})
    client.post("/orders", json={})
    text = client.get("/metrics", headers=_operator(issuer)).text
    assert "orders_accepted_total 1.0" in text
    for reason in ("malformed_json", "unsupported_media_type", "validation"):
        assert f'orders_rejected_total{{reason="{reason}"}} 1.0' in text
    assert "order_ack_latency_seconds_bucket" in text


def test_each_app_has_its_own_metrics(publisher: InMemoryPublisher, issuer: TestIssuer) -> None:
    with _client(publisher, issuer) as first, _client(InMemoryPublisher(), issuer) as second:
        first.post("/orders", json=ORDER)
        assert "orders_accepted_total 0.0" in second.get("/metrics", headers=_operator(issuer)).text


def test_cors_lets_the_query_service_page_post(client: TestClient) -> None:
    preflight = client.options(
        "/orders",
        headers={
            "Origin": "http://localhost:8001",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:8001"
    response = client.post("/orders", json=ORDER, headers={"Origin": "http://127.0.0.1:8001"})
    assert "x-consistency-token" in response.headers["access-control-expose-headers"].lower()


def test_openapi_documents_every_status(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/orders"]["post"]["responses"]
    assert {"201", "400", "401", "403", "413", "415", "422", "429", "503"} <= set(responses)
    assert "Retry-After" in responses["503"]["headers"]
    assert "X-Consistency-Token" in responses["201"]["headers"]
    assert "503" in spec["paths"]["/health/ready"]["get"]["responses"]


@pytest.fixture(scope="module")
def shared_client(issuer: TestIssuer) -> Iterator[TestClient]:
    with _client(InMemoryPublisher(), issuer, orders_per_minute=1_000_000) as client:
        yield client


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.sampled_from(["4.99", "NaN"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "user_id": json_values,
            "items": st.lists(
                st.dictionaries(
                    st.sampled_from(["sku", "name", "unit_price", "quantity", "x"]), json_values
                ),
                max_size=3,
            ),
        }
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=bodies,
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/x+json"]),
    key=st.none() | st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=140),
)
def test_no_input_yields_a_500(
    shared_client: TestClient, body: bytes, content_type: str, key: str | None
) -> None:
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Idempotency-Key"] = key
    try:
        response = shared_client.post("/orders", content=body, headers=headers)
    except UnicodeEncodeError:  # httpx itself refuses some header values
        return
    # 403: a body naming another user than the token's (alice).
    assert response.status_code in {201, 400, 403, 413, 415, 422}, response.text
    assert "detail" in response.json() or response.status_code == 201


def test_no_or_a_bad_token_is_401_with_www_authenticate(
    client: TestClient, publisher: InMemoryPublisher, issuer: TestIssuer
) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer not.a.jwt"}):
        response = client.post("/orders", json=ORDER, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    expired = issuer.mint("alice", lifetime_s=-60)
    response = client.post("/orders", json=ORDER, headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert publisher.records == []


def test_the_order_is_for_the_token_user_and_naming_another_is_403(
    client: TestClient, publisher: InMemoryPublisher, issuer: TestIssuer
) -> None:
    unnamed = {key: value for key, value in ORDER.items() if key != "user_id"}
    assert client.post("/orders", json=unnamed).json()["user_id"] == "alice"
    forbidden = client.post("/orders", json={**ORDER, "user_id": "bob"})
    assert forbidden.status_code == 403
    # Not even an operator places orders for someone else.
    as_operator = client.post(
        "/orders", json={**ORDER, "user_id": "bob"}, headers=_operator(issuer)
    )
    assert as_operator.status_code == 403
    assert [key for key, _, _ in publisher.records] == [b"alice"]


def test_orders_past_the_per_minute_limit_are_429_with_retry_after(
    publisher: InMemoryPublisher, issuer: TestIssuer
) -> None:
    with _client(publisher, issuer, orders_per_minute=3) as client:
        assert [client.post("/orders", json=ORDER).status_code for _ in range(3)] == [201] * 3
        refused = client.post("/orders", json=ORDER)
        bob = client.post(
            "/orders", json={**ORDER, "user_id": "bob"}, headers=issuer.headers("bob")
        )
        metrics = client.get("/metrics", headers=_operator(issuer)).text
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert bob.status_code == 201  # per user
    assert 'orders_rejected_total{reason="rate_limited"} 1.0' in metrics


def test_metrics_need_the_ops_listener_or_read_any(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": ""}).status_code == 401


def test_with_auth_disabled_the_body_names_the_user(publisher: InMemoryPublisher) -> None:
    app = create_app(CommandSettings(auth_disabled=True), publisher, provision_topic=lambda: None)
    with TestClient(app) as client:
        assert client.post("/orders", json={**ORDER, "user_id": "bob"}).json()["user_id"] == "bob"
        assert client.post("/orders", json={"items": ORDER["items"]}).status_code == 422


def test_answers_carry_the_security_headers(client: TestClient) -> None:
    headers = client.get("/health/live").headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
