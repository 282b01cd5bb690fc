"""HTTP routes. They only translate: parse, call one function, map the outcome to a status."""

from __future__ import annotations

from datetime import UTC, datetime
from time import perf_counter
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from command_service.dependencies import ServicesDep
from command_service.exceptions import UnsupportedMediaType
from command_service.orders import (
    IDEMPOTENCY_KEY_PATTERN,
    OrderAccepted,
    PlaceOrderRequest,
    accepted,
    parse_place_order,
    to_event,
)
from shared.access import AUTH_RESPONSES, OPS_ONLY, PrincipalDep
from shared.auth import Principal, acting_user
from shared.events import encode, headers, written_as
from shared.http import (
    METRICS_RESPONSES,
    Health,
    ValidationErrorBody,
    error_doc,
    metrics_response,
    unavailable_doc,
)
from shared.tokens import ConsistencyToken

MAX_BODY_BYTES = 64 * 1024
TOKEN_HEADER = "X-Consistency-Token"

router = APIRouter()

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retrying with the same key (for the same user) gives the same order_id.",
        json_schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN, "minLength": 1, "maxLength": 128},
    ),
]


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The request schema with its `$defs` inlined, so it stands alone inside the OpenAPI doc."""
    definitions = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


PLACE_ORDER_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "Kafka acknowledged the order's event.",
        "headers": {
            TOKEN_HEADER: {
                "description": "Where the event landed; pass it to the query service to read "
                "your own write.",
                "schema": {"type": "string"},
            }
        },
    },
    400: error_doc("The body is malformed JSON."),
    **AUTH_RESPONSES,
    413: error_doc(f"The body is larger than {MAX_BODY_BYTES} bytes."),
    415: error_doc("The body is not application/json."),
    422: error_doc("The order or the Idempotency-Key is invalid.", ValidationErrorBody),
    429: {
        **error_doc("The user placed ORDERS_PER_MINUTE orders within the last minute."),
        "headers": {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        },
    },
    503: unavailable_doc(
        "Kafka did not acknowledge the event in time; retry (same Idempotency-Key)."
    ),
}


def _require_json(content_type: str | None) -> None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(content_type)


def _acting_user(principal: Principal | None, order: PlaceOrderRequest) -> str | None:
    # The one place that decides who places the order: the token's user; the body may name
    # only them (with AUTH_DISABLED, whoever it names).
    return acting_user(principal, order.user_id)


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderAccepted,
    responses=PLACE_ORDER_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _inline_refs(PlaceOrderRequest.model_json_schema())}
            },
        }
    },
)
async def place_order(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    _require_json(request.headers.get("content-type"))
    order = parse_place_order(await request.body())
    user_id = _acting_user(principal, order)
    event = to_event(order, idempotency_key, datetime.now(UTC), user_id)
    services.throttle.take(event.user_id)
    started = perf_counter()
    attributes = {"order.id": str(event.order_id)}
    version = services.settings.command_event_version
    with services.tracing.server_span("POST /orders", request.headers, attributes) as traced:
        delivery = await services.publisher.publish(
            event.user_id.encode(), encode(written_as(event, version)), [*headers(version), *traced]
        )
    services.metrics.ack_latency.observe(perf_counter() - started)
    services.metrics.accepted.inc()
    token = ConsistencyToken(delivery.partition, delivery.offset).encode()
    return Response(
        accepted(event, token).model_dump_json(),
        status_code=201,
        media_type="application/json",
        headers={TOKEN_HEADER: token},
    )


@router.get("/health/live", response_model=Health)
async def live() -> Health:
    return Health(status="live")


@router.get(
    "/health/ready",
    response_model=Health,
    responses={
        503: {"model": Health, "description": "Kafka does not answer or the topic is missing."}
    },
)
async def ready(services: ServicesDep) -> Health | JSONResponse:
    readiness = await services.publisher.readiness()
    if not readiness.ready:
        body = Health(status="not_ready", detail=readiness.detail)
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ready", detail=readiness.detail)


@router.get(
    "/metrics",
    dependencies=[OPS_ONLY],
    response_class=Response,
    responses={**METRICS_RESPONSES, **AUTH_RESPONSES},
)
async def metrics(services: ServicesDep) -> Response:
    return metrics_response(services.metrics.registry)
