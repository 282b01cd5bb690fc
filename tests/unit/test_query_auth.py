"""Who may read what from the query service: tokens, read-any, stream tickets, the ops listener,
the caps on streams, and the page's security headers; over the same fakes as test_query_api."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from devtools.issuer import TestIssuer
from query_service.http.tickets import StreamTickets
from query_service.settings import QuerySettings
from shared.access import OpsListener
from shared.exceptions import Forbidden, NotAuthenticated
from tests.query_fakes import (
    FakeLog,
    app_over_fakes,
)

PARTITIONS = 3
READS = [
    "/users/{}/items",
    "/users/{}/orders",
    "/users/{}/orders/" + "0" * 8 + "-0000-0000-0000-" + "0" * 12,
]


def _app(tmp_path: Path, **overrides: Any) -> Any:
    settings = QuerySettings(
        orders_topic_partitions=PARTITIONS,
        query_state_dir=tmp_path,
        query_batch_timeout_ms=10,
        **overrides,
    )
    return app_over_fakes(settings, FakeLog(settings.orders_topic, PARTITIONS))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(_app(tmp_path, query_max_streams_per_user=1)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", READS)
def test_users_read_only_their_own_view(client: TestClient, issuer: TestIssuer, path: str) -> None:
    alice = issuer.headers("alice")
    assert client.get(path.format("alice"), headers=alice).status_code in (200, 404)
    assert client.get(path.format("bob"), headers=alice).status_code == 403
    support = issuer.headers("sam", ["orders:read-any"])
    assert client.get(path.format("bob"), headers=support).status_code in (200, 404)


@pytest.mark.parametrize("path", [*READS, "/users/{}/items/stream"])
def test_without_a_valid_token_it_is_401_with_www_authenticate(
    client: TestClient, issuer: TestIssuer, path: str
) -> None:
    for headers in ({}, bearer("junk"), bearer(issuer.mint("alice", lifetime_s=-5))):
        response = client.get(path.format("alice"), headers=headers)
        assert response.status_code == 401, (path, headers)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["detail"]


def test_a_stream_ticket_opens_that_users_stream_only(
    client: TestClient, issuer: TestIssuer
) -> None:
    alice = issuer.headers("alice")
    assert client.post("/users/bob/items/stream-ticket", headers=alice).status_code == 403
    assert client.post("/users/alice/items/stream-ticket").status_code == 401
    issued = client.post("/users/alice/items/stream-ticket", headers=alice)
    assert issued.status_code == 200
    ticket = issued.json()["ticket"]

    assert client.get("/users/bob/items/stream", params={"ticket": ticket}).status_code == 403
    for bad in (ticket[:-2] + "xx", "nonsense", ticket.replace(".", "")):
        assert client.get("/users/alice/items/stream", params={"ticket": bad}).status_code == 401
    with client.stream("GET", "/users/alice/items/stream", params={"ticket": ticket}) as stream:
        assert stream.status_code == 200
        assert any(line.startswith("event: snapshot") for line in _first_lines(stream))
        # One stream per user here: a second is refused at once, not queued.
        again = client.get("/users/alice/items/stream", params={"ticket": ticket})
        assert again.status_code == 429
        assert again.headers["Retry-After"]


def _first_lines(stream: Any) -> Iterator[str]:
    for line in stream.iter_lines():
        yield line
        if line.startswith("data:"):
            return


def test_tickets_expire_and_belong_to_one_secret() -> None:
    now = [1000.0]
    tickets = StreamTickets(b"k" * 32, 60, clock=lambda: now[0])
    ticket, expires_at = tickets.issue("alice")
    assert expires_at == 1060
    tickets.check(ticket, "alice")
    with pytest.raises(Forbidden):
        tickets.check(ticket, "bob")
    with pytest.raises(NotAuthenticated):
        StreamTickets(b"x" * 32, 60, clock=lambda: now[0]).check(ticket, "alice")
    now[0] = 1061
    with pytest.raises(NotAuthenticated, match="expired"):
        tickets.check(ticket, "alice")


def test_metrics_answer_on_the_ops_listener_or_to_read_any(
    tmp_path: Path, client: TestClient, issuer: TestIssuer
) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=issuer.headers("alice")).status_code == 403
    support = issuer.headers("sam", ["orders:read-any"])
    assert "query_ready" in client.get("/metrics", headers=support).text
    with TestClient(OpsListener(_app(tmp_path / "ops"))) as ops:
        assert "query_ready" in ops.get("/metrics").text


def test_the_page_and_its_config_say_how_to_sign_in_under_a_strict_policy(
    client: TestClient, issuer: TestIssuer
) -> None:
    config = client.get("/config.json").json()
    assert config["auth"] == {
        "issuer": issuer.url,
        "client_id": "orders-page",
        "resource": "urn:orders",
        "scope": "openid orders:read orders:write",
    }
    page = client.get("/")
    assert page.status_code == 200
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    connect = policy.split("connect-src ", 1)[1].split(";", 1)[0].split()
    assert sorted(connect) == sorted(["'self'", "http://127.0.0.1:8000", issuer.url])
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in page.text
    assert " style=" not in page.text


def test_with_auth_disabled_anyone_reads_anyone_and_the_page_asks_for_a_user(
    tmp_path: Path,
) -> None:
    with TestClient(_app(tmp_path, auth_disabled=True)) as client:
        assert client.get("/users/bob/items").status_code == 200
        assert client.get("/config.json").json()["auth"] is None


def test_auth_disabled_is_a_warning_at_every_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="shared.access"):
        _app(tmp_path, auth_disabled=True)
    assert "AUTH_DISABLED=true: authentication is OFF" in caplog.text


def test_the_ops_listener_serves_only_ops_routes(tmp_path: Path) -> None:
    with TestClient(OpsListener(_app(tmp_path))) as ops:
        assert ops.get("/health/live").status_code == 200
        assert ops.get("/users/alice/items").status_code == 404
        assert ops.get("/").status_code == 404
