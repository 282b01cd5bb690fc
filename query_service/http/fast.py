"""The hot reads without the framework's per-request machinery.

A read route is declared to FastAPI as usual (its parameters, responses and OpenAPI are the
framework's), but a pure ASGI layer (FastReads), outside the app's other middlewares, first
tries a fast path: parse the few parameters and headers by hand, check the bearer token, and
call the same answer function (http/reads.py) the route's endpoint calls. Anything the fast
path does not recognise as plainly valid (a parameter out of range, repeated, or of another
form; no or a malformed Authorization header) falls through to the framework, which answers
exactly as documented (422, 401). Errors the answer raises are mapped by the app's exception
handlers, the same either way.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Final, cast

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from query_service.http import reads
from query_service.http.dependencies import Services
from query_service.http.middleware import observe
from query_service.metrics import QueryMetrics
from query_service.view.reads import DEFAULT_LINES, DEFAULT_ORDERS, MAX_LINES, MAX_ORDERS
from shared.access import Access
from shared.auth import ensure_may_read
from shared.events import USER_ID_PATTERN
from shared.money import PriceGroup
from shared.tokens import ConsistencyToken

FastRead = Callable[[Request], Awaitable[Response | None]]

_USER_ID: Final = re.compile(USER_ID_PATTERN)
_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DIGITS: Final = re.compile(r"[0-9]{1,6}")
_GROUPS: Final = frozenset(group.value for group in PriceGroup)
MAX_WAIT_MS: Final = 30_000
MAX_CURSOR: Final = 2048


class FastReads:
    """The outermost of the app's own middlewares: a GET (or HEAD) for one of the hot read
    routes is answered here (route matching, dependency solving, the router's and the other
    middlewares' wrappers skipped); anything its fast read declines goes on to the framework
    untouched (a HEAD as its GET, without the content). What those middlewares give every
    answer, a fast answer gets here: `headers` (the security headers and X-Served-By, from the
    same sources) and its time in the request histogram under its route. An error the answer
    raises is answered by the app's own exception handler."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[tuple[APIRoute, FastRead]],
        headers: Sequence[tuple[bytes, bytes]],
        metrics: QueryMetrics,
    ) -> None:
        self.app = app
        self._routes = tuple(routes)
        self._headers = list(headers)
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            for route, fast in self._routes:
                match = route.path_regex.match(scope["path"])
                if match is None:
                    continue
                # HEAD is the GET without its content (RFC 9110 9.3.2), conditional alike.
                head = scope["method"] == "HEAD"
                as_get = {**scope, "method": "GET"}
                started = time.perf_counter()
                own = {**as_get, "path_params": match.groupdict(), "route": route}
                request = Request(own, receive)
                try:
                    answer = await fast(request)
                except Exception as exc:  # noqa: BLE001 - handed to the app's own handler
                    answer = await _handled(request, exc)
                if answer is None:  # the framework's, as a GET
                    await self.app(as_get, receive, _without_content(send) if head else send)
                    return
                headers = answer.raw_headers
                # A forwarded answer has them already, from the instance that served it.
                present = {name for name, _ in headers}
                headers += [each for each in self._headers if each[0] not in present]
                observe(self._metrics, scope["method"], route.path, answer.status_code, started)
                await answer(own, receive, _without_content(send) if head else send)
                return
        await self.app(scope, receive, send)


def _without_content(send: Send) -> Send:
    """`send` for a HEAD: the GET's status and headers (its Content-Length too), no content."""

    async def headers_only(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b"", "more_body": message.get("more_body", False)}
        await send(message)

    return headers_only


async def _handled(request: Request, exc: Exception) -> Response:
    """What the app's exception handler for `exc` answers (as Starlette looks it up: by the
    exception's classes in order); an exception no handler takes is raised again."""
    handlers = request.app.exception_handlers
    for kind in type(exc).__mro__:
        handler = handlers.get(kind)
        if handler is not None:
            answer = handler(request, exc)
            return cast(Response, await answer if inspect.isawaitable(answer) else answer)
    raise exc


def hot_routes(routes: Iterable[BaseRoute]) -> list[tuple[APIRoute, FastRead]]:
    """The GET routes among `routes` (the API router's: an app's own list holds an included
    router as one entry) that have a fast read, each with its read."""
    reads_by_path: dict[str, FastRead] = {
        "/users/{user_id}/items": items,
        "/users/{user_id}/orders": orders,
        "/users/{user_id}/orders/{order_id}": order,
    }
    found = [
        (route, reads_by_path[route.path])
        for route in routes
        if isinstance(route, APIRoute) and route.path in reads_by_path
    ]
    if len(found) != len(reads_by_path):  # a renamed route must not lose its fast read quietly
        raise RuntimeError(f"fast reads without a route: {sorted(reads_by_path)}")
    return found


class _Parsed:
    """A read's common parts, or the reason to leave the request to the framework (None)."""

    __slots__ = ("if_none_match", "params", "services", "token_text", "user_id")

    def __init__(
        self,
        services: Services,
        user_id: str,
        params: dict[str, str],
        token_text: str | None,
        if_none_match: str | None,
    ) -> None:
        self.services = services
        self.user_id = user_id
        self.params = params
        self.token_text = token_text
        self.if_none_match = if_none_match


# The request headers a read looks at (ASGI servers give names in lower case).
_AUTHORIZATION: Final = b"authorization"
_TOKEN_HEADER: Final = b"x-consistency-token"
_IF_NONE_MATCH: Final = b"if-none-match"
_READ_HEADERS: Final = frozenset({_AUTHORIZATION, _TOKEN_HEADER, _IF_NONE_MATCH})


def _headers(request: Request) -> dict[bytes, str]:
    """The headers a read looks at, the first of each, in one pass (Starlette's Headers scans
    the whole list for each one asked)."""
    found: dict[bytes, str] = {}
    for name, value in request.scope["headers"]:
        if name in _READ_HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    return found


async def _common(request: Request, allowed: frozenset[str]) -> _Parsed | None:
    if request.method != "GET":
        return None
    user_id = request.path_params.get("user_id")
    if not isinstance(user_id, str) or _USER_ID.fullmatch(user_id) is None:
        return None
    params: dict[str, str] = {}
    if request.scope["query_string"]:  # (parsing even an empty one costs a hot read ~2 %)
        for key, value in request.query_params.multi_items():
            if key in params:
                return None  # repeated: how it reads is the framework's to say
            if key in allowed:
                params[key] = value
    if "wait_ms" in params and not _bounded(params["wait_ms"], 0, MAX_WAIT_MS):
        return None
    services: Services = request.app.state.services
    access: Access = request.app.state.access
    headers = _headers(request)
    if access.verifier is not None:
        credentials = _bearer(headers.get(_AUTHORIZATION))
        if credentials is None:
            return None  # the framework's 401, with its exact words
        principal = await access.verifier.verify(credentials)
        ensure_may_read(principal, user_id)
    token_text = params.get("consistency_token")
    if token_text is None:
        token_text = headers.get(_TOKEN_HEADER)
    return _Parsed(services, user_id, params, token_text, headers.get(_IF_NONE_MATCH))


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials or " " in credentials.strip():
        return None
    return credentials.strip()


def _bounded(text: str, low: int, high: int) -> bool:
    return _DIGITS.fullmatch(text) is not None and low <= int(text) <= high


def _token(parsed: _Parsed) -> ConsistencyToken | None:
    return None if parsed.token_text is None else ConsistencyToken.parse(parsed.token_text)


def _wait_ms(parsed: _Parsed) -> int:
    return int(parsed.params.get("wait_ms", reads.DEFAULT_WAIT_MS))


_ITEMS: Final = frozenset({"consistency_token", "group", "cursor", "limit", "wait_ms"})
_ORDERS: Final = frozenset({"consistency_token", "cursor", "limit", "wait_ms"})
_ORDER: Final = frozenset({"consistency_token", "wait_ms"})


async def items(request: Request) -> Response | None:
    parsed = await _common(request, _ITEMS)
    if parsed is None:
        return None
    params = parsed.params
    group = params.get("group")
    cursor = params.get("cursor")
    limit = params.get("limit", str(DEFAULT_LINES))
    if (
        (group is not None and group not in _GROUPS)
        or (cursor is not None and len(cursor) > MAX_CURSOR)
        or not _bounded(limit, 1, MAX_LINES)
    ):
        return None
    return await reads.items(
        request,
        parsed.services,
        parsed.user_id,
        _token(parsed),
        group,
        cursor,
        int(limit),
        _wait_ms(parsed),
        parsed.if_none_match,
    )


async def orders(request: Request) -> Response | None:
    parsed = await _common(request, _ORDERS)
    if parsed is None:
        return None
    cursor = parsed.params.get("cursor")
    limit = parsed.params.get("limit", str(DEFAULT_ORDERS))
    if (cursor is not None and len(cursor) > MAX_CURSOR) or not _bounded(limit, 1, MAX_ORDERS):
        return None
    return await reads.orders(
        request,
        parsed.services,
        parsed.user_id,
        _token(parsed),
        cursor,
        int(limit),
        _wait_ms(parsed),
        parsed.if_none_match,
    )


async def order(request: Request) -> Response | None:
    order_id = request.path_params.get("order_id")
    if not isinstance(order_id, str) or _UUID.fullmatch(order_id) is None:
        return None  # the framework reads other forms of a UUID, or refuses them
    parsed = await _common(request, _ORDER)
    if parsed is None:
        return None
    return await reads.order(
        request,
        parsed.services,
        parsed.user_id,
        order_id,
        _token(parsed),
        _wait_ms(parsed),
        parsed.if_none_match,
    )
