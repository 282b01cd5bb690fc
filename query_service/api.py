"""HTTP routes: parse, call the reader, map its errors to status codes; money becomes text here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from query_service.dependencies import ServicesDep
from query_service.errors import NotYetConsistentBody
from query_service.metrics import QueryMetrics
from query_service.projection import GROUPS, AppliedOrder, Group, ItemsView
from shared.events import UserId
from shared.http import Health, ValidationErrorBody, error_doc, unavailable_doc
from shared.money import PriceGroup, minor_to_pounds
from shared.tokens import ConsistencyToken


class LineOut(BaseModel):
    sku: str
    name: str
    unit_price: str
    quantity: int
    order_ids: list[str]


class GroupOut(BaseModel):
    lines: list[LineOut]
    item_count: int
    total: str


class ItemsOut(BaseModel):
    user_id: str
    groups: dict[PriceGroup, GroupOut]
    consistency_token: str


class ReadyOut(Health):
    applied_offsets: dict[int, int]
    end_offsets_at_start: dict[int, int] | None


class PageConfigOut(BaseModel):
    command_service_url: str


class OrderItemOut(BaseModel):
    sku: str
    name: str
    unit_price: str
    quantity: int
    price_group: PriceGroup


class OrderOut(BaseModel):
    order_id: str
    user_id: str
    placed_at: str
    items: list[OrderItemOut]
    consistency_token: str


def group_out(group: Group) -> GroupOut:
    lines = sorted(group["lines"].values(), key=lambda ln: (ln["sku"], ln["unit_price_minor"]))
    return GroupOut(
        lines=[
            LineOut(
                sku=line["sku"],
                name=line["name"],
                unit_price=minor_to_pounds(line["unit_price_minor"]),
                quantity=line["quantity"],
                order_ids=line["order_ids"],
            )
            for line in lines
        ],
        item_count=group["item_count"],
        total=minor_to_pounds(group["total_minor"]),
    )


def items_out(
    user_id: str, view: ItemsView, token: ConsistencyToken, only: PriceGroup | None = None
) -> ItemsOut:
    names = GROUPS if only is None else (str(only.value),)
    return ItemsOut(
        user_id=user_id,
        groups={PriceGroup(name): group_out(view["groups"][name]) for name in names},
        consistency_token=token.encode(),
    )


def order_out(order: AppliedOrder, token: ConsistencyToken) -> OrderOut:
    return OrderOut(
        order_id=order["order_id"],
        user_id=order["user_id"],
        placed_at=order["placed_at"],
        items=[
            OrderItemOut(
                sku=item["sku"],
                name=item["name"],
                unit_price=minor_to_pounds(item["unit_price_minor"]),
                quantity=item["quantity"],
                price_group=PriceGroup.of(item["unit_price_minor"]),
            )
            for item in order["items"]
        ],
        consistency_token=token.encode(),
    )


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
WaitMs = Annotated[int, Query(ge=0, le=30_000, description="How long to wait for the token")]

READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: error_doc("The consistency token is malformed or names an unknown partition."),
    422: error_doc("A parameter is invalid.", ValidationErrorBody),
    503: {
        **unavailable_doc("The view has not applied the token's offset within wait_ms."),
        "model": NotYetConsistentBody,
    },
}

router = APIRouter()


@router.get("/users/{user_id}/items", response_model=ItemsOut, responses=READ_RESPONSES)
async def user_items(
    user_id: UserIdPath,
    services: ServicesDep,
    token: TokenDep,
    group: Annotated[PriceGroup | None, Query()] = None,
    wait_ms: WaitMs = 5000,
) -> ItemsOut:
    reader = services.reader
    await reader.wait_for(token, wait_ms / 1000)
    view, position = reader.items(user_id)
    return items_out(user_id, view, position, group)


@router.get(
    "/users/{user_id}/orders/{order_id}",
    response_model=OrderOut,
    responses={**READ_RESPONSES, 404: error_doc("The view holds no such order of that user.")},
)
async def user_order(
    user_id: UserIdPath,
    order_id: UUID,
    services: ServicesDep,
    token: TokenDep,
    wait_ms: WaitMs = 5000,
) -> OrderOut:
    reader = services.reader
    await reader.wait_for(token, wait_ms / 1000)
    order, position = reader.order(user_id, str(order_id))
    return order_out(order, position)


@router.get(
    "/users/{user_id}/items/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}},
)
async def user_items_stream(user_id: UserIdPath, services: ServicesDep) -> EventSourceResponse:
    reader, positions = services.reader, services.positions
    partition = reader.partition_of(user_id)
    # Subscribe before reading the first view, so that no change can fall between the two.
    subscription = positions.subscribe(user_id, partition)

    async def changes() -> AsyncIterator[ServerSentEvent]:
        try:
            view, token = reader.items(user_id)
            yield _event(user_id, view, token)
            while True:
                change = await subscription.changes.get()
                token = ConsistencyToken(partition, change.applied_offset)
                yield _event(user_id, change.view, token)
        finally:
            positions.unsubscribe(subscription)

    return EventSourceResponse(changes(), ping=15)


def _event(user_id: str, view: ItemsView, token: ConsistencyToken) -> ServerSentEvent:
    body = items_out(user_id, view, token).model_dump_json()
    return ServerSentEvent(data=body, event="items", id=token.encode())


@router.get("/config.json", response_model=PageConfigOut)
async def page_config(services: ServicesDep) -> PageConfigOut:
    """What the web page needs to know that only the deployment does."""
    return PageConfigOut(command_service_url=services.settings.query_command_service_url)


@router.get(
    "/health/live",
    response_model=Health,
    responses={503: {"model": Health, "description": "The consumer thread has stopped."}},
)
async def live(services: ServicesDep) -> Health | JSONResponse:
    if not services.runner.alive:
        body = Health(status="failed", detail="the consumer thread stopped; see the log")
        return JSONResponse(body.model_dump(), 503)
    return Health(status="live")


@router.get(
    "/health/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Still catching up with the topic."}},
)
async def ready(services: ServicesDep) -> ReadyOut | JSONResponse:
    runner = services.runner
    body = ReadyOut(
        status="ready" if runner.ready else "not_ready",
        detail=None if runner.ready else "catching up with the end offsets seen at start-up",
        applied_offsets=services.positions.applied_offsets(),
        end_offsets_at_start=runner.end_offsets_at_start,
    )
    return body if runner.ready else JSONResponse(body.model_dump(mode="json"), 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
            "description": "Prometheus text format.",
        }
    },
)
async def metrics(services: ServicesDep) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


class RequestTimer:
    """Times each HTTP request to its response start, labelled by route template."""

    def __init__(self, app: ASGIApp, metrics: QueryMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = getattr(scope.get("route"), "path", "unmatched")
                self.metrics.request_seconds.labels(
                    scope["method"], route, str(message["status"])
                ).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, timed_send)
