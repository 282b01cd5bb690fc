"""Between the HTTP edge and the forwarder: what of a request a forward repeats, and another
instance's answer as this instance's response (bytes and headers as they came)."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from query_service.cluster.forwarding import FORWARDED_HEADER, ForwardedAnswer, ReadRequest


def read_request(request: Request) -> ReadRequest:
    return ReadRequest(
        request.url.path,
        request.query_params.multi_items(),
        request.headers.items(),
        FORWARDED_HEADER in request.headers,
    )


def forwarded_response(answer: ForwardedAnswer) -> Response:
    headers = dict(answer.headers)
    if answer.stream is not None:
        return StreamingResponse(answer.stream(), answer.status, headers=headers)
    return Response(answer.body, answer.status, headers=headers)
