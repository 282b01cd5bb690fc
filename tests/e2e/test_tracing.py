"""One order, one trace: with OTEL_EXPORTER_OTLP_ENDPOINT set, the command service's span of the
POST continues the client's trace, travels in the event's Kafka headers, and the query service's
apply of that event and the SSE delta that carries it are its children. The spans are received
over OTLP/HTTP by a receiver in this test, decoded with the OpenTelemetry protobufs, as a
collector would."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer

from devtools.environment import service_env, unique_topic
from devtools.otlp import ClientTrace, OtlpReceiver, ReceivedSpan
from devtools.processes import ServiceProcess
from tests.e2e.query_support import metric, sse_events
from tests.support import as_named_user, operator_headers, place_traced, running_system, wait_for


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    found = OtlpReceiver(keep_spans=True)
    yield found
    found.close()


def test_an_orders_post_and_its_apply_are_one_trace(
    kafka_bootstrap: str, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    client = ClientTrace.new()
    with running_system(kafka_bootstrap, tmp_path, tracing) as system:
        stream_url = f"{system.query.url}/users/alice/items/stream"
        with httpx.stream("GET", stream_url, timeout=20, auth=as_named_user()) as response:
            events = sse_events(response)
            assert next(events)["event"] == "snapshot"
            placed = place_traced(system.command.url, "alice", client)
            token = placed.json()["consistency_token"]
            delta = next(events)
            assert (delta["event"], f"v1:{delta['id']}") == ("delta", token)

        def ours() -> list[ReceivedSpan] | None:
            found = [span for span in receiver.spans if span.trace_id == client.trace_id]
            return found if len(found) >= 3 else None

        spans = wait_for(ours, timeout=20, what="the POST's, the apply's and the delta's spans")
        assert metric(system.query.url, "query_delta_freshness_seconds_count") == 1
        assert metric(system.query.url, "query_freshness_seconds_count") >= 1
    (post,) = [s for s in spans if s.service == "command_service"]
    (apply,) = [s for s in spans if s.name == "orders apply"]
    (sent,) = [s for s in spans if s.name == "orders delta"]
    assert (apply.service, sent.service) == ("query_service", "query_service")
    assert sent.parent_span_id == post.span_id
    assert post.name == "POST /orders"
    assert post.parent_span_id == client.span_id
    assert post.attributes["order.id"] == placed.json()["order_id"]
    assert apply.name == "orders apply"
    assert apply.parent_span_id == post.span_id
    partition, offset = token.rsplit(":", 2)[-2:]
    assert (apply.attributes["partition"], apply.attributes["offset"]) == (
        int(partition),
        int(offset),
    )


def _record_headers(bootstrap: str, topic: str) -> list[tuple[str, bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"headers-{secrets.token_hex(4)}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return list(message.headers() or [])
        raise AssertionError(f"no record on {topic}")
    finally:
        consumer.close()


def test_with_tracing_off_an_event_carries_no_trace(kafka_bootstrap: str, tmp_path: Path) -> None:
    with running_system(kafka_bootstrap, tmp_path) as system:
        place_traced(system.command.url, "bob", ClientTrace.new())
        topic = system.command.env["ORDERS_TOPIC"]
    keys = [key for key, _ in _record_headers(kafka_bootstrap, topic)]
    assert "schema_version" in keys
    assert "traceparent" not in keys


def test_a_forwarded_read_is_one_trace_across_two_query_instances(
    kafka_bootstrap: str, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    topic = unique_topic()
    processes = [
        ServiceProcess(
            "command_service",
            {**service_env(kafka_bootstrap, None, topic), **tracing},
            tmp_path / "command.log",
        )
    ]
    for name in ("q1", "q2"):
        env = {
            **service_env(kafka_bootstrap, tmp_path / name, topic),
            **tracing,
            "QUERY_CONSUMER_GROUP": f"{topic}-query",
            "QUERY_INSTANCE_ID": name,
            "QUERY_HEARTBEAT_MS": "200",
            "QUERY_MEMBER_TIMEOUT_MS": "1500",
        }
        processes.append(ServiceProcess("query_service", env, tmp_path / f"{name}.log"))
    command, q1, q2 = processes
    try:
        for process in processes:
            process.start("/health/ready")

        def both_members() -> bool:
            for query in (q1, q2):
                found = httpx.get(f"{query.url}/cluster", headers=operator_headers(), timeout=2)
                if len(found.json()["members"]) != 2:
                    return False
            return True

        wait_for(both_members, 30, "both instances to see each other")
        token = place_traced(command.url, "alice", ClientTrace.new()).json()["consistency_token"]
        reads = {}
        for query in (q1, q2):
            read = ClientTrace.new()
            answer = httpx.get(
                f"{query.url}/users/alice/items",
                params={"consistency_token": token, "wait_ms": 10_000},
                headers=read.headers(),
                auth=as_named_user(),
                timeout=15,
            )
            assert answer.status_code == 200, answer.text
            reads[query.env["QUERY_INSTANCE_ID"]] = (answer.headers["X-Served-By"], read.trace_id)
        ((entry, (holder, trace_id)),) = [
            (name, read) for name, read in reads.items() if read[0] != name
        ]

        def spans_of_the_forward() -> list[ReceivedSpan] | None:
            found = [span for span in receiver.spans if span.trace_id == trace_id]
            return found if len(found) >= 3 else None

        spans = wait_for(spans_of_the_forward, 20, "the forwarded read's spans")
    finally:
        for process in processes:
            process.stop()
    (at_entry,) = [s for s in spans if s.instance == entry]
    at_holder = {s.name: s for s in spans if s.instance == holder}
    assert at_entry.name == "GET /users/alice/items"
    assert at_holder["GET /users/alice/items"].parent_span_id == at_entry.span_id
    waited = at_holder["read waits for its token"]
    assert waited.parent_span_id == at_holder["GET /users/alice/items"].span_id
