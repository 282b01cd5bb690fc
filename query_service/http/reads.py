"""The read answers, one function each, called by the framework's routes and by the fast path
alike (http/fast.py): serve here or forward, wait for the token, answer 304 when the client
holds the current answer, else read the page and encode it once.
"""

from __future__ import annotations

import time
from typing import Final

import anyio
from fastapi import Request, Response

from query_service.http.conditional import CACHE_CONTROL, etag, none_match
from query_service.http.dependencies import Services
from query_service.http.forwarded import forwarded_response, read_request
from query_service.http.responses import items_json, order_out, orders_out
from shared.http import model_response
from shared.tokens import ConsistencyToken

# How long a read waits for its token by default, and a stream for a caught-up copy of its
# partition before it is refused.
DEFAULT_WAIT_MS: Final = 5000


async def serve_or_forward(
    request: Request,
    services: Services,
    user_id: str,
    token: ConsistencyToken | None,
    wait_ms: int,
    *,
    stream: bool = False,
) -> Response | None:
    """None once this instance can answer (the token's offset applied here); else the answer of
    the instance the read was forwarded to. NoCopyAvailable and NotYetConsistent are 503s.
    """
    partition = services.reader.partition_for_read(user_id, token)
    started = time.monotonic()
    forwarded = await services.forwarder.route(
        read_request(request), partition, token, wait_ms / 1000, stream=stream
    )
    if forwarded is not None:
        return forwarded_response(forwarded)
    if token is not None:
        remaining = max(wait_ms / 1000 - (time.monotonic() - started), 0)
        await services.positions.wait_for(token.partition, token.offset, remaining)
    return None


def _validators(tag: str) -> dict[str, str]:
    return {"ETag": tag, "Cache-Control": CACHE_CONTROL}


def _not_modified(tag: str) -> Response:
    return Response(status_code=304, headers=_validators(tag))


async def items(
    request: Request,
    services: Services,
    user_id: str,
    token: ConsistencyToken | None,
    group: str | None,
    cursor: str | None,
    limit: int,
    wait_ms: int,
    if_none_match: str | None,
) -> Response:
    forwarded = await serve_or_forward(request, services, user_id, token, wait_ms)
    if forwarded is not None:
        return forwarded
    at = services.reader.snapshot(user_id)
    tag = etag("items", user_id, at.token, group, cursor, limit)
    if none_match(if_none_match, tag):
        return _not_modified(tag)
    page = services.reader.items(user_id, group, cursor, limit, at=at)
    return Response(
        items_json(user_id, page), media_type="application/json", headers=_validators(tag)
    )


async def orders(
    request: Request,
    services: Services,
    user_id: str,
    token: ConsistencyToken | None,
    cursor: str | None,
    limit: int,
    wait_ms: int,
    if_none_match: str | None,
) -> Response:
    forwarded = await serve_or_forward(request, services, user_id, token, wait_ms)
    if forwarded is not None:
        return forwarded
    at = services.reader.snapshot(user_id)
    tag = etag("orders", user_id, at.token, cursor, limit)
    if none_match(if_none_match, tag):
        return _not_modified(tag)
    # Up to `limit` whole orders are decoded: off the event loop, a few at a time.
    page = await anyio.to_thread.run_sync(
        services.reader.orders, user_id, cursor, limit, at, limiter=services.worker_limiter
    )
    answer = model_response(orders_out(user_id, page))
    answer.headers.update(_validators(tag))
    return answer


async def order(
    request: Request,
    services: Services,
    user_id: str,
    order_id: str,
    token: ConsistencyToken | None,
    wait_ms: int,
    if_none_match: str | None,
) -> Response:
    forwarded = await serve_or_forward(request, services, user_id, token, wait_ms)
    if forwarded is not None:
        return forwarded
    at = services.reader.snapshot(user_id)
    tag = etag("order", user_id, at.token, order_id)
    if none_match(if_none_match, tag):
        return _not_modified(tag)
    event, position = services.reader.order(user_id, order_id, at=at)
    answer = model_response(order_out(event, position))
    answer.headers.update(_validators(tag))
    return answer
