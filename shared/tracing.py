"""Traces across the services (OpenTelemetry), one per order: the command service's span of the
POST, written into the event's Kafka headers as W3C `traceparent` / `tracestate`; the query
service's span of each traced event's apply, a child of that one.

Off unless the standard OpenTelemetry variables name an OTLP endpoint
(`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true`
wins). Off, `Tracing.off()` does nothing at all: no context, no headers, one attribute read per
request or batch.

The query side makes a child span per traced event rather than one span per batch with links:
the confluent-kafka instrumentation's batch spans are not children of the producer's
(opentelemetry-python-contrib#1674), so a link would not put the apply in the order's trace. A
span costs only for events whose POST was sampled (the parent's flag): with tracing on and a
ratio sampler, the others cost one header lookup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Final

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACE_HEADERS: Final = ("traceparent", "tracestate")
KafkaHeaders = Sequence[tuple[str, bytes]]
Attributes = Mapping[str, str | int]

_PROPAGATOR: Final = TraceContextTextMapPropagator()
_NO_HEADERS: KafkaHeaders = ()


def enabled_by(environ: Mapping[str, str]) -> bool:
    """Whether the standard OpenTelemetry variables ask for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def trace_carrier(headers: KafkaHeaders | None) -> dict[str, str]:
    """The W3C trace context among a record's headers, as a propagator reads it."""
    found: dict[str, str] = {}
    for key, value in headers or ():
        if key in TRACE_HEADERS and value is not None:
            found[key] = value.decode("latin-1")
    return found


def sampled(carrier: Mapping[str, str]) -> bool:
    """Whether the trace context's flags say its POST was sampled: a parent-based sampler makes
    no span of any other, so the caller need not ask (the bench found the extract and the
    non-recording span of each unsampled event cost 29 % of the ingest at 1 in 100 sampled)."""
    parent = carrier.get("traceparent", "")
    try:
        return len(parent) == 55 and bool(int(parent[53:55], 16) & 1)
    except ValueError:
        return False


class Tracing:
    """Spans of this service, exported by the tracer's provider; `Tracing.off()` makes none."""

    def __init__(self, tracer: Tracer | None, shutdown: contextlib.ExitStack | None = None):
        self._tracer = tracer
        self._shutdown = shutdown
        self.enabled = tracer is not None

    @classmethod
    def off(cls) -> Tracing:
        return cls(None)

    @classmethod
    def exporting(cls, service: str, instance: str) -> Tracing:
        """Spans batched to the OTLP/HTTP endpoint the OTEL_* variables name, as `service`
        (unless OTEL_SERVICE_NAME says otherwise) and its `instance`."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create(
            {"service.name": service, "service.instance.id": instance}
        ).merge(OTELResourceDetector().detect())
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        stack = contextlib.ExitStack()
        stack.callback(provider.shutdown)
        return cls(provider.get_tracer("orders"), stack)

    @contextlib.contextmanager
    def _server_span(
        self, tracer: Tracer, name: str, incoming: Mapping[str, str], attributes: Attributes
    ) -> Iterator[KafkaHeaders]:
        parent = _PROPAGATOR.extract(incoming) if incoming else None
        with tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=attributes
        ) as span:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
            yield [(key, value.encode("latin-1")) for key, value in carrier.items()]

    def server_span(
        self, name: str, incoming: Mapping[str, str], attributes: Attributes
    ) -> contextlib.AbstractContextManager[KafkaHeaders]:
        """A span of a request (continuing the caller's trace if its headers carry one); yields
        the headers that carry it on (a Kafka record's), none when off."""
        if self._tracer is None:
            return contextlib.nullcontext(_NO_HEADERS)
        return self._server_span(self._tracer, name, incoming, attributes)

    def span(self, name: str, attributes: Attributes) -> contextlib.AbstractContextManager[object]:
        """A span inside the current one (a request's), none when off."""
        if self._tracer is None:
            return contextlib.nullcontext()
        return self._tracer.start_as_current_span(name, attributes=attributes)

    def children(
        self,
        name: str,
        parents: Sequence[tuple[Mapping[str, str], Attributes]],
        start_ns: int,
        end_ns: int,
    ) -> None:
        """One span from `start_ns` to `end_ns` for each (trace carrier, attributes), a child of
        the span the carrier names (consumer kind: an event taken from the log)."""
        tracer = self._tracer
        if tracer is None:
            return
        for carrier, attributes in parents:
            context: Context = _PROPAGATOR.extract(carrier)
            span = tracer.start_span(
                name,
                context=context,
                kind=SpanKind.CONSUMER,
                attributes=attributes,
                start_time=start_ns,
            )
            span.end(end_time=end_ns)

    def close(self) -> None:
        """Export what is pending (a few seconds at most) and stop."""
        if self._shutdown is not None:
            self._shutdown.close()
