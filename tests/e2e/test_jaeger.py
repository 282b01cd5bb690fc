"""The real trace backend: a Jaeger (built by `make jaeger`, started with ops/jaeger.yaml on free
ports) receives both services' spans over OTLP/HTTP, and its query API shows one order as one
trace from the POST to the apply. Run by `make trace-test` (not `make test`: building Jaeger on
a cold machine takes longer than the whole suite)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.otlp import ClientTrace
from kafka_local.broker import REPO, free_port
from tests.support import place_traced, running_system, wait_for

pytestmark = pytest.mark.jaeger

JAEGER = REPO / ".cache" / "jaeger" / "jaeger"


@pytest.fixture
def jaeger(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(OTLP/HTTP endpoint, query API) of a Jaeger of this test's own."""
    if not JAEGER.exists():
        raise AssertionError(f"{JAEGER} is missing: run `make jaeger` (make trace-test does)")
    ports = {
        "JAEGER_UI_PORT": free_port(),
        "JAEGER_QUERY_GRPC_PORT": free_port(),
        "JAEGER_OTLP_PORT": free_port(),
        "JAEGER_OTLP_GRPC_PORT": free_port(),
    }
    with (tmp_path / "jaeger.log").open("wb") as log:
        process = subprocess.Popen(
            [str(JAEGER), "--config", str(REPO / "ops" / "jaeger.yaml")],
            env={**os.environ, **{k: str(v) for k, v in ports.items()}},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    api = f"http://127.0.0.1:{ports['JAEGER_UI_PORT']}"

    def answers() -> bool:
        try:
            return httpx.get(f"{api}/api/services", timeout=2).status_code == 200
        except httpx.TransportError:
            return process.poll() is not None and _failed(tmp_path)

    try:
        wait_for(answers, 30, "Jaeger to answer")
        yield f"http://127.0.0.1:{ports['JAEGER_OTLP_PORT']}", api
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:  # it drains its exporters first; in memory, nothing
            process.kill()
            process.wait(10)


def _failed(tmp_path: Path) -> bool:
    raise AssertionError("Jaeger exited:\n" + (tmp_path / "jaeger.log").read_text()[-3000:])


def test_jaeger_shows_an_order_as_one_trace_across_both_services(
    kafka_bootstrap: str, tmp_path: Path, jaeger: tuple[str, str]
) -> None:
    otlp, api = jaeger
    tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    client = ClientTrace.new()
    trace_id = client.trace_id
    with running_system(kafka_bootstrap, tmp_path, tracing) as system:
        place_traced(system.command.url, "alice", client)

        def the_trace() -> dict[str, object] | None:
            found = httpx.get(f"{api}/api/traces/{trace_id}", timeout=5)
            if found.status_code != 200:
                return None
            (trace,) = found.json()["data"]
            names = {span["operationName"] for span in trace["spans"]}
            return trace if {"POST /orders", "orders apply"} <= names else None

        trace = wait_for(the_trace, 30, "the order's trace in Jaeger")
    processes = trace["processes"]
    assert isinstance(processes, dict)
    services = {process["serviceName"] for process in processes.values()}
    assert services == {"command_service", "query_service"}
    spans = {span["operationName"]: span for span in trace["spans"]}  # type: ignore[attr-defined]
    (parent,) = spans["orders apply"]["references"]
    assert parent["refType"] == "CHILD_OF"
    assert parent["spanID"] == spans["POST /orders"]["spanID"]
