"""An OTLP/HTTP traces endpoint (POST /v1/traces, protobuf, uncompressed) in this process: what a
collector is to the services, for the tracing tests (which keep the spans, decoded) and the
tracing benchmark (which keeps only counts, so that receiving costs it nothing)."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_ANSWER = ExportTraceServiceResponse().SerializeToString()


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    instance: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, object]


def decoded(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest.FromString(body)
    found = []
    for resource_spans in request.resource_spans:
        resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        service = resource["service.name"]
        instance = resource.get("service.instance.id", "")
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                attributes: dict[str, object] = {
                    a.key: a.value.string_value or a.value.int_value for a in span.attributes
                }
                found.append(
                    ReceivedSpan(
                        service,
                        instance,
                        span.name,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        attributes,
                    )
                )
    return found


class OtlpReceiver:
    """Every export accepted and counted; its spans decoded and kept if `keep_spans`."""

    def __init__(self, *, keep_spans: bool) -> None:
        self.spans: list[ReceivedSpan] = []
        self.exports = 0
        self.bytes = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.exports += 1
                receiver.bytes += len(body)
                if keep_spans:
                    receiver.spans += decoded(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(_ANSWER)))
                self.end_headers()
                self.wfile.write(_ANSWER)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()


@dataclass(frozen=True)
class ClientTrace:
    """A client's sampled trace context, as its W3C `traceparent` header carries it."""

    trace_id: str
    span_id: str

    @classmethod
    def new(cls) -> ClientTrace:
        return cls(secrets.token_hex(16), secrets.token_hex(8))

    def headers(self) -> dict[str, str]:
        return {"traceparent": f"00-{self.trace_id}-{self.span_id}-01"}
