"""The read answers, one function each, called by the framework's routes and by the fast path
alike (http/fast.py): serve here or forward, wait for the token, answer 304 when the client
holds the current answer, else the page's bytes: from the page cache while the user's version
is the one they were rendered at, else read and encoded once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from functools import partial
from typing import Final

import anyio
from fastapi import Request, Response

from query_service.cluster.forwarding import ReadRequest
from query_service.http.conditional import CACHE_CONTROL, etag, none_match
from query_service.http.dependencies import Services
from query_service.http.forwarded import forwarded_response, read_request
from query_service.http.page_cache import CachedPage
from query_service.http.responses import items_json, order_out, orders_out
from query_service.view.reads import UserSnapshot
from shared.http import EncodedResponse, model_json
from shared.tokens import ConsistencyToken
from shared.tracing import TRACE_HEADERS

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

    Traced, all of it is a span of the read (continuing the caller's trace): a forward carries
    it on to the copy that answers, a token's wait is a span of its own.
    """
    tracing = services.tracing
    partition = services.reader.partition_for_read(user_id, token)
    if not tracing.enabled:
        read = partial(read_request, request)
        return await _route(services, read, partition, token, wait_ms, stream, nullcontext)
    incoming = {k: v for k, v in request.headers.items() if k in TRACE_HEADERS}
    with tracing.server_span(
        f"{request.method} {request.url.path}", incoming, {"partition": partition}
    ) as outgoing:

        def forwarded_read() -> ReadRequest:
            read = read_request(request)
            kept = [(k, v) for k, v in read.headers if k.lower() not in TRACE_HEADERS]
            carried = [(k, v.decode("latin-1")) for k, v in outgoing]
            return replace(read, headers=[*kept, *carried])

        def waiting() -> AbstractContextManager[object]:
            offset = token.offset if token is not None else -1
            return tracing.span("read waits for its token", {"offset": offset})

        return await _route(services, forwarded_read, partition, token, wait_ms, stream, waiting)


async def _route(
    services: Services,
    read: Callable[[], ReadRequest],
    partition: int,
    token: ConsistencyToken | None,
    wait_ms: int,
    stream: bool,
    waiting: Callable[[], AbstractContextManager[object]],
) -> Response | None:
    started = time.monotonic()
    forwarded = await services.forwarder.route(
        read, partition, token, wait_ms / 1000, stream=stream
    )
    if forwarded is not None:
        return forwarded_response(forwarded)
    if token is not None:
        remaining = max(wait_ms / 1000 - (time.monotonic() - started), 0)
        with waiting():
            await services.positions.wait_for(token.partition, token.offset, remaining)
    return None


_CACHE_CONTROL: Final = (b"cache-control", CACHE_CONTROL.encode())
_JSON: Final = (b"content-type", b"application/json")


def _not_modified(tag: str) -> Response:
    return EncodedResponse(304, b"", [(b"etag", tag.encode()), _CACHE_CONTROL])


def _ok(page: CachedPage) -> Response:
    return EncodedResponse(200, page.body, [*page.headers])


async def _answer(
    services: Services,
    key: tuple[str, str, *tuple[object, ...]],
    if_none_match: str | None,
    render: Callable[[UserSnapshot], Awaitable[bytes]],
) -> Response:
    """304 when the client holds the current answer; else its bytes: the page cache's while the
    user's version is the one they were rendered at (one point read to know), else rendered by
    `render` from a snapshot. `key` is the answer's kind, user and parameters."""
    user_id = key[1]
    cached = services.pages.get(key, partial(services.reader.current_token, user_id))
    if cached is not None:
        if none_match(if_none_match, cached.etag):
            return _not_modified(cached.etag)
        return _ok(cached)
    at = services.reader.snapshot(user_id)
    tag = etag(at.token, *key)
    matched = none_match(if_none_match, tag)
    # `*` matches an answer that exists only: rendering a missing order raises its 404.
    if matched and "*" not in (if_none_match or ""):
        return _not_modified(tag)
    body = await render(at)
    headers = (
        (b"content-length", b"%d" % len(body)),
        _JSON,
        (b"etag", tag.encode()),
        _CACHE_CONTROL,
    )
    cached = CachedPage(at.token, tag, body, headers)
    services.pages.put(key, cached)
    return _not_modified(tag) if matched else _ok(cached)


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

    async def render(at: UserSnapshot) -> bytes:
        return items_json(user_id, services.reader.items(user_id, group, cursor, limit, at=at))

    return await _answer(services, ("items", user_id, group, cursor, limit), if_none_match, render)


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

    async def render(at: UserSnapshot) -> bytes:
        # Up to `limit` whole orders are decoded: off the event loop, a few at a time.
        page = await anyio.to_thread.run_sync(
            services.reader.orders, user_id, cursor, limit, at, limiter=services.worker_limiter
        )
        return model_json(orders_out(user_id, page))

    return await _answer(services, ("orders", user_id, cursor, limit), if_none_match, render)


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

    async def render(at: UserSnapshot) -> bytes:
        event, position = services.reader.order(user_id, order_id, at=at)
        return model_json(order_out(event, position))

    return await _answer(services, ("order", user_id, order_id), if_none_match, render)
