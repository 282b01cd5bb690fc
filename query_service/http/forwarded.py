"""Between the HTTP edge and the forwarder: what of a request a forward repeats, and another
instance's answer as this instance's response (bytes and headers as they came)."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from query_service.cluster.forwarding import FORWARDED_HEADER, ForwardedAnswer, ReadRequest
from shared.http import EncodedResponse


def read_request(request: Request) -> ReadRequest:
    return ReadRequest(
        request.url.path,
        request.query_params.multi_items(),
        request.headers.items(),
        FORWARDED_HEADER in request.headers,
    )


def forwarded_response(answer: ForwardedAnswer) -> Response:
    if answer.stream is not None:
        return StreamingResponse(answer.stream(), answer.status, headers=dict(answer.headers))
    raw = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers
    ]
    if answer.status >= 200 and answer.status not in (204, 304):  # as Starlette's Response has it
        raw.append((b"content-length", b"%d" % len(answer.body)))
    return EncodedResponse(answer.status, answer.body, raw)
