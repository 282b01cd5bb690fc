"""shared/tracing.py with the SDK's in-memory exporter: off does nothing, on continues traces."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.tracing import Tracing, enabled_by, sampled, trace_carrier

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


def _on() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider.get_tracer("test")), exporter


def test_off_makes_no_span_and_carries_nothing() -> None:
    tracing = Tracing.off()
    assert not tracing.enabled
    with tracing.server_span("POST /orders", {"traceparent": TRACEPARENT}, {}) as outgoing:
        assert list(outgoing) == []
    tracing.children("orders apply", [({"traceparent": TRACEPARENT}, {})], 1, 2)
    tracing.close()


def test_on_a_request_continues_its_callers_trace_and_hands_it_on() -> None:
    tracing, exporter = _on()
    with tracing.server_span("POST /orders", {"traceparent": TRACEPARENT}, {"a": 1}) as out:
        carried = dict((key, value.decode()) for key, value in out)
    (span,) = exporter.get_finished_spans()
    assert span.context is not None
    assert span.parent is not None
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == CALLER_SPAN
    assert carried["traceparent"] == f"00-{TRACE_ID}-{format(span.context.span_id, '016x')}-01"


def test_children_of_records_are_children_of_their_posts_with_the_times_given() -> None:
    tracing, exporter = _on()
    headers = [("schema_version", b"1"), ("traceparent", TRACEPARENT.encode())]
    carrier = trace_carrier(headers)
    assert carrier == {"traceparent": TRACEPARENT}
    assert trace_carrier(None) == {}
    tracing.children("orders apply", [(carrier, {"offset": 7})], 1_000, 5_000)
    (span,) = exporter.get_finished_spans()
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == CALLER_SPAN
    assert (span.start_time, span.end_time) == (1_000, 5_000)
    assert span.attributes == {"offset": 7}


def test_sampled_reads_the_flag_of_a_well_formed_traceparent_only() -> None:
    assert sampled({"traceparent": TRACEPARENT})
    assert not sampled({"traceparent": TRACEPARENT[:-2] + "00"})
    assert sampled({"traceparent": TRACEPARENT[:-2] + "03"})
    assert not sampled({"traceparent": TRACEPARENT[:-2] + "zz"})
    assert not sampled({"traceparent": "00-abc-01"})
    assert not sampled({})


def test_only_an_otlp_endpoint_turns_tracing_on() -> None:
    assert not enabled_by({})
    assert enabled_by({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert enabled_by({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x:4318/v1/traces"})
    assert not enabled_by(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}
    )
