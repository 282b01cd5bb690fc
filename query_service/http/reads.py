"""The read answers, one function each, called by the framework's routes and by the fast path
alike (http/fast.py): serve here or forward, wait for the token, answer 304 when the client
holds the current answer, else the page's bytes: from the page cache while the user's version
is the one they were rendered at, else read and encoded once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Final

import anyio
from fastapi import Request, Response

from query_service.http.conditional import CACHE_CONTROL, etag, none_match
from query_service.http.dependencies import Services
from query_service.http.forwarded import forwarded_response, read_request
from query_service.http.page_cache import CachedPage
from query_service.http.responses import items_json, order_out, orders_out
from query_service.view.reads import UserSnapshot
from shared.http import model_json
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
        partial(read_request, request), partition, token, wait_ms / 1000, stream=stream
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


async def _answer(
    services: Services,
    at: UserSnapshot,
    key: tuple[str, str, *tuple[object, ...]],
    if_none_match: str | None,
    render: Callable[[], Awaitable[bytes]],
) -> Response:
    """304 when the client holds the answer at `at`; else its bytes, rendered by `render` only
    when the page cache does not hold them. `key` is the answer's kind, user and parameters."""
    cached = services.pages.get(key, at.token)
    tag = cached.etag if cached is not None else etag(at.token, *key)
    matched = none_match(if_none_match, tag)
    # `*` matches an answer that exists only: rendering a missing order raises its 404.
    if cached is None and (not matched or "*" in (if_none_match or "")):
        cached = CachedPage(at.token, tag, await render())
        services.pages.put(key, cached)
    if matched or cached is None:  # (None only when matched: else it was rendered above)
        return _not_modified(tag)
    return Response(cached.body, media_type="application/json", headers=_validators(tag))


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

    async def render() -> bytes:
        return items_json(user_id, services.reader.items(user_id, group, cursor, limit, at=at))

    return await _answer(
        services, at, ("items", user_id, group, cursor, limit), if_none_match, render
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

    async def render() -> bytes:
        # Up to `limit` whole orders are decoded: off the event loop, a few at a time.
        page = await anyio.to_thread.run_sync(
            services.reader.orders, user_id, cursor, limit, at, limiter=services.worker_limiter
        )
        return model_json(orders_out(user_id, page))

    return await _answer(services, at, ("orders", user_id, cursor, limit), if_none_match, render)


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

    async def render() -> bytes:
        event, position = services.reader.order(user_id, order_id, at=at)
        return model_json(order_out(event, position))

    return await _answer(services, at, ("order", user_id, order_id), if_none_match, render)
