"""Who may fetch a partition's checkpoint: only another instance with the cluster credential;
users' tokens, even `orders:read-any`, never. Over the same fakes as test_query_auth."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from devtools.issuer import TestIssuer
from query_service.cluster import credential
from query_service.cluster.credential import CLUSTER_AUTH_HEADER
from query_service.settings import QuerySettings
from tests.query_fakes import FakeLog, app_over_fakes

SECRET = "c" * 40
PATH = "/internal/partitions/1/checkpoint"


def _client(tmp_path: Path, **overrides: Any) -> TestClient:
    settings = QuerySettings(
        orders_topic_partitions=3, query_state_dir=tmp_path, query_batch_timeout_ms=10, **overrides
    )
    return TestClient(app_over_fakes(settings, FakeLog(settings.orders_topic, 3)))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path, query_cluster_secret=SECRET) as client:
        yield client


def signed(secret: str, partition: int = 1, topic: str = "orders") -> dict[str, str]:
    return {CLUSTER_AUTH_HEADER: credential.sign(secret.encode(), topic, partition, time.time())}


def test_users_tokens_are_refused_even_read_any(client: TestClient, issuer: TestIssuer) -> None:
    for headers in (issuer.headers("alice"), issuer.headers("sam", ["orders:read-any"])):
        answer = client.get(PATH, headers=headers)
        assert answer.status_code == 403
        assert "user's token cannot fetch a checkpoint" in answer.json()["detail"]


def test_no_credential_is_401(client: TestClient) -> None:
    answer = client.get(PATH)
    assert answer.status_code == 401
    assert CLUSTER_AUTH_HEADER in answer.json()["detail"]


def test_a_wrong_credential_is_403(client: TestClient) -> None:
    for headers in (
        signed("x" * 40),
        signed(SECRET, partition=2),
        signed(SECRET, topic="other"),
        {CLUSTER_AUTH_HEADER: "garbage"},
    ):
        answer = client.get(PATH, headers=headers)
        assert answer.status_code == 403, headers
        assert "does not verify" in answer.json()["detail"]


def test_the_right_credential_passes(client: TestClient) -> None:
    # The in-memory fakes hold nothing a checkpoint could be taken of: 404, past the checks.
    answer = client.get(PATH, headers=signed(SECRET))
    assert answer.status_code == 404
    assert "holds no state of partition 1" in answer.json()["detail"]


def test_without_the_cluster_secret_nothing_is_served(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        assert client.get(PATH, headers=signed(SECRET)).status_code == 404


def test_the_route_is_not_in_the_openapi(client: TestClient) -> None:
    assert not any("internal" in path for path in client.get("/openapi.json").json()["paths"])
