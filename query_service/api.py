"""HTTP routes: parse, call the reader, map its errors to status codes; money becomes text here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from query_service.exceptions import NotYetConsistent, OrderNotFound, UnknownPartition
from query_service.metrics import QueryMetrics
from query_service.positions import Positions
from query_service.projection import GROUPS, AppliedOrder, Group, ItemsView
from query_service.reads import Reader
from query_service.runner import Runner
from query_service.settings import QuerySettings
from shared.events import UserId
from shared.exceptions import MalformedToken
from shared.money import PriceGroup, minor_to_pounds
from shared.tokens import ConsistencyToken

RETRY_AFTER_S = 1


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


def group_body(group: Group) -> dict[str, Any]:
    lines = sorted(group["lines"].values(), key=lambda ln: (ln["sku"], ln["unit_price_minor"]))
    return {
        "lines": [
            {
                "sku": line["sku"],
                "name": line["name"],
                "unit_price": minor_to_pounds(line["unit_price_minor"]),
                "quantity": line["quantity"],
                "order_ids": line["order_ids"],
            }
            for line in lines
        ],
        "item_count": group["item_count"],
        "total": minor_to_pounds(group["total_minor"]),
    }


def items_body(
    user_id: str, view: ItemsView, token: ConsistencyToken, only: PriceGroup | None = None
) -> dict[str, Any]:
    names = GROUPS if only is None else (str(only.value),)
    return {
        "user_id": user_id,
        "groups": {name: group_body(view["groups"][name]) for name in names},
        "consistency_token": token.encode(),
    }


def order_body(order: AppliedOrder, token: ConsistencyToken) -> dict[str, Any]:
    return {
        "order_id": order["order_id"],
        "user_id": order["user_id"],
        "placed_at": order["placed_at"],
        "items": [
            {
                "sku": item["sku"],
                "name": item["name"],
                "unit_price": minor_to_pounds(item["unit_price_minor"]),
                "quantity": item["quantity"],
                "price_group": PriceGroup.of(item["unit_price_minor"]).value,
            }
            for item in order["items"]
        ],
        "consistency_token": token.encode(),
    }


def _json(body: dict[str, Any], status_code: int = 200) -> Response:
    content = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    return Response(content, status_code, media_type="application/json")


# Dependencies are `async def`: FastAPI runs a plain `def` dependency in a worker thread, which
# cost more than the whole read it serves (seen in a py-spy profile under load).
async def get_reader(request: Request) -> Reader:
    return cast(Reader, request.app.state.reader)


async def get_positions(request: Request) -> Positions:
    return cast(Positions, request.app.state.positions)


async def get_runner(request: Request) -> Runner:
    return cast(Runner, request.app.state.runner)


async def get_metrics(request: Request) -> QueryMetrics:
    return cast(QueryMetrics, request.app.state.metrics)


async def get_settings(request: Request) -> QuerySettings:
    return cast(QuerySettings, request.app.state.settings)


async def consistency_token(
    consistency_token: Annotated[
        str | None, Query(description="As the command service sent it")
    ] = None,
    x_consistency_token: Annotated[str | None, Header()] = None,
) -> ConsistencyToken | None:
    text = consistency_token if consistency_token is not None else x_consistency_token
    return None if text is None else ConsistencyToken.parse(text)


ReaderDep = Annotated[Reader, Depends(get_reader)]
TokenDep = Annotated[ConsistencyToken | None, Depends(consistency_token)]
UserIdPath = Annotated[UserId, Path()]
WaitMs = Annotated[int, Query(ge=0, le=30_000, description="How long to wait for the token")]

router = APIRouter()


@router.get("/users/{user_id}/items", response_model=ItemsOut)
async def user_items(
    user_id: UserIdPath,
    reader: ReaderDep,
    token: TokenDep,
    group: Annotated[PriceGroup | None, Query()] = None,
    wait_ms: WaitMs = 5000,
) -> Response:
    await reader.wait_for(token, wait_ms / 1000)
    view, position = reader.items(user_id)
    return _json(items_body(user_id, view, position, group))


@router.get("/users/{user_id}/orders/{order_id}", response_model=OrderOut)
async def user_order(
    user_id: UserIdPath, order_id: UUID, reader: ReaderDep, token: TokenDep, wait_ms: WaitMs = 5000
) -> Response:
    await reader.wait_for(token, wait_ms / 1000)
    order, position = reader.order(user_id, str(order_id))
    return _json(order_body(order, position))


@router.get("/users/{user_id}/items/stream")
async def user_items_stream(
    user_id: UserIdPath,
    reader: ReaderDep,
    positions: Annotated[Positions, Depends(get_positions)],
) -> EventSourceResponse:
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
    body = orjson.dumps(items_body(user_id, view, token)).decode()
    return ServerSentEvent(data=body, event="items", id=token.encode())


@router.get("/config.json", response_model=PageConfigOut)
async def page_config(settings: Annotated[QuerySettings, Depends(get_settings)]) -> Response:
    """What the web page needs to know that only the deployment does."""
    return _json({"command_service_url": settings.query_command_service_url})


@router.get("/health/live")
async def live(runner: Annotated[Runner, Depends(get_runner)]) -> Response:
    if not runner.alive:
        return _json({"status": "failed", "error": repr(runner.failure)}, 503)
    return _json({"status": "live"})


@router.get("/health/ready")
async def ready(
    runner: Annotated[Runner, Depends(get_runner)],
    positions: Annotated[Positions, Depends(get_positions)],
) -> Response:
    body = {
        "status": "ready" if runner.ready else "catching_up",
        "applied_offsets": positions.applied_offsets(),
        "end_offsets_at_start": runner.end_offsets_at_start,
    }
    return _json(body, 200 if runner.ready else 503)


@router.get("/metrics")
async def metrics(registry: Annotated[QueryMetrics, Depends(get_metrics)]) -> Response:
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)


def install_error_handlers(app: FastAPI) -> None:
    async def malformed(_: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, 400)

    async def not_found(_: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, 404)

    async def not_yet(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NotYetConsistent)
        body = {
            "detail": str(exc),
            "partition": exc.partition,
            "requested_offset": exc.requested_offset,
            "applied_offset": exc.applied_offset,
            "applied_offsets": cast(Positions, request.app.state.positions).applied_offsets(),
        }
        return JSONResponse(body, 503, headers={"Retry-After": str(RETRY_AFTER_S)})

    app.add_exception_handler(MalformedToken, malformed)
    app.add_exception_handler(UnknownPartition, malformed)
    app.add_exception_handler(OrderNotFound, not_found)
    app.add_exception_handler(NotYetConsistent, not_yet)


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
