"""Helpers for tests that run the services as real processes over real HTTP."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from devtools.environment import service_env
from devtools.issuer import TestIssuer
from devtools.otlp import ClientTrace
from devtools.processes import ServiceProcess
from kafka_local.broker import free_port

T = TypeVar("T")


@functools.cache
def test_issuer() -> TestIssuer:
    """The one issuer every service in the test session trusts (the `issuer` fixture)."""
    return TestIssuer()


test_issuer.__test__ = False  # type: ignore[attr-defined]


def as_named_user() -> httpx.Auth:
    """Signs each request as the user it names (path or order body), with the test issuer."""
    return test_issuer().auth()


def operator_headers() -> dict[str, str]:
    """An operator's token: `orders:read-any` (reads anyone, /metrics on the main port)."""
    return test_issuer().headers("operator", ["orders:read-any"])


def wait_for(
    condition: Callable[[], T | None], timeout: float = 30.0, what: str = "condition"
) -> T:
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@dataclass(frozen=True)
class System:
    command: ServiceProcess
    query: ServiceProcess


@contextmanager
def running_system(
    kafka_bootstrap: str, workdir: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[System]:
    """Both services on a topic of their own, wired as `make run` wires them: the page the query
    service serves may post across origins to the command service. `extra_env`: more settings
    for both (AUTH_* of another issuer in the browser test, OTEL_* for traces)."""
    env = {
        **service_env(kafka_bootstrap, workdir / "state"),
        # Shared, as instances behind one load balancer share it: a restarted query service
        # still accepts the stream tickets the page holds.
        "QUERY_STREAM_TICKET_SECRET": "test-stream-ticket-secret-0123456789abcdef",
        **(extra_env or {}),
    }
    minted = len(test_issuer().minted)
    command_port, query_port = free_port(), free_port()
    command = ServiceProcess(
        "command_service",
        {**env, "CORS_ALLOW_ORIGINS": f"http://127.0.0.1:{query_port}"},
        workdir / "command.log",
        port=command_port,
    )
    query = ServiceProcess(
        "query_service",
        {**env, "QUERY_COMMAND_SERVICE_URL": command.url},
        workdir / "query.log",
        port=query_port,
    )
    try:
        command.start("/health/ready")
        query.start("/health/ready")
        yield System(command, query)
    finally:
        command.stop()
        query.stop()
    secrets = [env["QUERY_STREAM_TICKET_SECRET"], *test_issuer().minted[minted:]]
    for service in (command, query):
        assert_logs_are_json_without(service.log_path, secrets)


def assert_logs_are_json_without(path: Path, secrets: list[str]) -> None:
    """Every line of the log at `path` is one JSON object naming its level, logger, message and
    service, and none holds any of `secrets` (a token: nor its signature alone)."""
    text = path.read_text()
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"{path}:{number} is not JSON: {line[:300]}") from None
        assert {"level", "logger", "message", "service", "time"} <= record.keys(), line
    for secret in secrets:
        for part in {secret, secret.rsplit(".", 1)[-1]}:
            assert part not in text, f"{path} holds a secret: {part[:12]}..."


def place_traced(command_url: str, user: str, trace: ClientTrace) -> httpx.Response:
    """One order of one pen for `user`, posted within the client's `trace`; asserted accepted."""
    placed = httpx.post(
        f"{command_url}/orders",
        json={
            "user_id": user,
            "items": [{"sku": "PEN", "name": "Pen", "unit_price": 2, "quantity": 1}],
        },
        headers=trace.headers(),
        auth=as_named_user(),
        timeout=10,
    )
    assert placed.status_code == 201, placed.text
    return placed
