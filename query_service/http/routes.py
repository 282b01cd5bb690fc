"""HTTP routes. They only translate: parse, call the reader, map its pages to responses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from query_service.http import reads
from query_service.http.dependencies import Services, ServicesDep
from query_service.http.errors import NotYetConsistentBody
from query_service.http.positions import ViewChange
from query_service.http.reads import DEFAULT_WAIT_MS
from query_service.http.responses import (
    ClusterOut,
    ItemsOut,
    OrderOut,
    OrdersOut,
    PageAuthOut,
    PageConfigOut,
    ReadyOut,
    StreamTicketOut,
    cluster_out,
    delta_out,
    items_json,
    ready_out,
)
from query_service.view.reads import DEFAULT_LINES, DEFAULT_ORDERS, MAX_LINES, MAX_ORDERS, Reader
from shared.access import (
    AUTH_RESPONSES,
    OPS_ONLY,
    BearerTokenDep,
    PrincipalDep,
    access_disabled,
    bearer_principal,
)
from shared.auth import ensure_may_read
from shared.events import UserId
from shared.http import (
    METRICS_RESPONSES,
    ErrorBody,
    Health,
    ValidationErrorBody,
    error_doc,
    metrics_response,
    unavailable_doc,
)
from shared.money import PriceGroup
from shared.tokens import ConsistencyToken


async def consistency_token(
    consistency_token: Annotated[
        str | None, Query(description="As the command service sent it")
    ] = None,
    x_consistency_token: Annotated[str | None, Header()] = None,
) -> ConsistencyToken | None:
    text = consistency_token if consistency_token is not None else x_consistency_token
    return None if text is None else ConsistencyToken.parse(text)


TokenDep = Annotated[ConsistencyToken | None, Depends(consistency_token)]
UserIdPath = Annotated[UserId, Path()]


async def readable_user(user_id: UserIdPath, principal: PrincipalDep) -> str:
    """The path's user, if the token's user may read them (themselves, or `orders:read-any`)."""
    ensure_may_read(principal, user_id)
    return user_id


async def stream_user(
    request: Request,
    user_id: UserIdPath,
    services: ServicesDep,
    token: BearerTokenDep,
    ticket: Annotated[
        str | None,
        Query(
            max_length=512,
            description="From POST .../stream-ticket (EventSource sends no "
            "Authorization header); or send a bearer token.",
        ),
    ] = None,
) -> str:
    if ticket is not None and not access_disabled(request):
        services.tickets.check(ticket, user_id)
        return user_id
    ensure_may_read(await bearer_principal(request, token), user_id)
    return user_id


ReadableUser = Annotated[str, Depends(readable_user)]
WaitMs = Annotated[int, Query(ge=0, le=30_000, description="How long to wait for the token")]

# How often an idle stream checks that its partition is still held here, and the retry hint
# it ends with when it is not.
MOVE_CHECK_S: Final = 1.0
RETRY_MS: Final = 500

Cursor = Annotated[str | None, Query(max_length=2048, description="next_cursor of a page")]

READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    304: {
        "description": "Not modified: If-None-Match names the current answer's ETag.",
        "content": {},
    },
    400: error_doc("The consistency token or the cursor is malformed or foreign."),
    **AUTH_RESPONSES,
    422: error_doc("A parameter is invalid.", ValidationErrorBody),
    503: {
        **unavailable_doc(
            "The view has not applied the token's offset within wait_ms, or too many requests "
            "wait already (QUERY_MAX_WAITERS)."
        ),
        "model": NotYetConsistentBody | ErrorBody,
    },
}

router = APIRouter()


IfNoneMatch = Annotated[
    str | None,
    Header(max_length=1024, description="An ETag of an earlier answer: 304 if it is current"),
]


async def user_items(
    request: Request,
    user_id: ReadableUser,
    services: ServicesDep,
    token: TokenDep,
    group: Annotated[PriceGroup | None, Query()] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LINES)] = DEFAULT_LINES,
    wait_ms: WaitMs = DEFAULT_WAIT_MS,
    if_none_match: IfNoneMatch = None,
) -> Response:
    group_name = None if group is None else group.value
    return await reads.items(
        request, services, user_id, token, group_name, cursor, limit, wait_ms, if_none_match
    )


async def user_orders(
    request: Request,
    user_id: ReadableUser,
    services: ServicesDep,
    token: TokenDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ORDERS)] = DEFAULT_ORDERS,
    wait_ms: WaitMs = DEFAULT_WAIT_MS,
    if_none_match: IfNoneMatch = None,
) -> Response:
    return await reads.orders(
        request, services, user_id, token, cursor, limit, wait_ms, if_none_match
    )


async def user_order(
    request: Request,
    user_id: ReadableUser,
    order_id: UUID,
    services: ServicesDep,
    token: TokenDep,
    wait_ms: WaitMs = DEFAULT_WAIT_MS,
    if_none_match: IfNoneMatch = None,
) -> Response:
    return await reads.order(
        request, services, user_id, str(order_id), token, wait_ms, if_none_match
    )


# The hot reads: each answered by its fast path (fast.FastReads) when the request is plainly
# valid; what it declines comes here.
router.add_api_route(
    "/users/{user_id}/items",
    user_items,
    methods=["GET"],
    response_model=ItemsOut,
    responses=READ_RESPONSES,
)
router.add_api_route(
    "/users/{user_id}/orders",
    user_orders,
    methods=["GET"],
    response_model=OrdersOut,
    responses=READ_RESPONSES,
)
router.add_api_route(
    "/users/{user_id}/orders/{order_id}",
    user_order,
    methods=["GET"],
    response_model=OrderOut,
    responses={**READ_RESPONSES, 404: error_doc("The view holds no such order of that user.")},
)


@router.post(
    "/users/{user_id}/items/stream-ticket",
    response_model=StreamTicketOut,
    responses={**AUTH_RESPONSES, 422: error_doc("A parameter is invalid.", ValidationErrorBody)},
)
async def stream_ticket(user_id: ReadableUser, services: ServicesDep) -> StreamTicketOut:
    """A short-lived ticket (QUERY_STREAM_TICKET_S) that opens this user's items stream only."""
    ticket, expires_at = services.tickets.issue(user_id)
    return StreamTicketOut(ticket=ticket, expires_at=expires_at)


@router.get(
    "/users/{user_id}/items/stream",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."},
        **AUTH_RESPONSES,
        429: error_doc("The user has QUERY_MAX_STREAMS_PER_USER streams open already."),
        503: unavailable_doc("QUERY_MAX_STREAMS streams are open already."),
    },
)
async def user_items_stream(
    request: Request,
    user_id: Annotated[str, Depends(stream_user)],
    services: ServicesDep,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """`snapshot` (the summaries and first page of each group), then a `delta` per change with
    only the lines and summaries that changed; each event's id is `<partition>:<offset>`. A client
    that reconnects with Last-Event-ID gets nothing twice: no snapshot if it missed nothing, else
    a fresh snapshot. When the user's partition moves to another instance the stream ends with
    a `moved` event and a retry hint; the reconnect is served where the partition now is.
    """
    forwarded = await reads.serve_or_forward(
        request, services, user_id, None, DEFAULT_WAIT_MS, stream=True
    )
    if forwarded is not None:
        return forwarded
    reader, positions, health = services.reader, services.positions, services.health
    partition = reader.partition_of(user_id)
    # Subscribe before reading the first page, so that no change can fall between the two.
    subscription = positions.subscribe(user_id, partition)

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            sent = _resumed_at(last_event_id, reader.snapshot(user_id).token)
            if sent is None:
                sent, event = _snapshot(reader, user_id)
                yield event
            while True:
                try:
                    change = await asyncio.wait_for(subscription.changes.get(), MOVE_CHECK_S)
                except TimeoutError:
                    if partition not in health.holding().partitions:
                        yield ServerSentEvent(data="{}", event="moved", retry=RETRY_MS)
                        return
                    continue
                if subscription.overflowed:
                    subscription.overflowed = False
                    sent, event = _snapshot(reader, user_id)
                    yield event
                    continue
                if change.applied_offset <= sent:
                    continue  # the snapshot already held it
                sent = change.applied_offset
                if change.encoded is None:
                    change.encoded = delta_out(change).model_dump_json()
                yield ServerSentEvent(
                    data=change.encoded,
                    event="delta",
                    id=f"{partition}:{sent}",
                )
                _delivered(services, partition, change)
        finally:
            positions.unsubscribe(subscription)

    return EventSourceResponse(events(), ping=15)


def _delivered(services: Services, partition: int, change: ViewChange) -> None:
    """A delta went out: how old its batch's oldest event was, and (traced) a span of it as a
    child of each order's trace it carries."""
    if change.produced_ms is not None:
        age_s = time.time() - change.produced_ms / 1000
        services.metrics.delta_freshness.observe(max(0.0, age_s))
    if change.traces:
        parents = [(carrier, {"partition": partition}) for carrier in change.traces]
        services.tracing.children("orders delta", parents, change.queued_ns, time.time_ns())


def _resumed_at(last_event_id: str | None, now: ConsistencyToken) -> int | None:
    """The offset a reconnecting client has everything up to, if that is where the user's view
    still is (no batch changed it since)."""
    expected = f"{now.partition}:{now.offset}"
    return now.offset if last_event_id is not None and last_event_id.strip() == expected else None


def _snapshot(reader: Reader, user_id: str) -> tuple[int, ServerSentEvent]:
    page = reader.items(user_id)
    body = items_json(user_id, page).decode()
    offset = page.token.offset
    return offset, ServerSentEvent(
        data=body, event="snapshot", id=f"{page.token.partition}:{offset}"
    )


@router.get("/cluster", response_model=ClusterOut, dependencies=[OPS_ONLY])
async def cluster(services: ServicesDep) -> ClusterOut:
    """The instances this one knows of, what each holds (and keeps), who holds each partition,
    and the partitions this one is receiving as checkpoints."""
    return cluster_out(services.cluster(), services.handoffs())


@router.get("/config.json", response_model=PageConfigOut)
async def page_config(services: ServicesDep) -> PageConfigOut:
    """What the web page needs to know that only the deployment does."""
    settings = services.settings
    auth = PageAuthOut(
        issuer=settings.auth_issuer,
        client_id=settings.query_page_client_id,
        resource=settings.query_page_resource,
        scope=settings.query_page_scope,
    )
    return PageConfigOut(
        command_service_url=settings.query_command_service_url,
        auth=None if settings.auth_disabled else auth,
    )


@router.get(
    "/health/live",
    response_model=Health,
    responses={
        503: {"model": Health, "description": "The consumer or membership thread has stopped."}
    },
)
async def live(services: ServicesDep) -> Health | JSONResponse:
    if services.health.failure() is not None:
        body = Health(status="failed", detail="a part of the instance stopped; see the log")
        return JSONResponse(body.model_dump(), 503)
    return Health(status="live")


@router.get(
    "/health/ready",
    response_model=ReadyOut,
    responses={
        503: {
            "model": ReadyOut,
            "description": "Not placed yet, or catching up with a partition it holds.",
        }
    },
)
async def ready(services: ServicesDep) -> ReadyOut | JSONResponse:
    health = services.health
    body = ready_out(
        services.settings.query_instance_id,
        health.holding(),
        services.positions,
        failed=health.failure() is not None,
    )
    return body if body.status == "ready" else JSONResponse(body.model_dump(mode="json"), 503)


@router.get(
    "/metrics",
    dependencies=[OPS_ONLY],
    response_class=Response,
    responses={**METRICS_RESPONSES, **AUTH_RESPONSES},
)
async def metrics(services: ServicesDep) -> Response:
    return metrics_response(services.metrics.registry)
