"""What both services' HTTP edges share: the health and error bodies, the catch-all 500 and the
Retry-After a client gets with every 503.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Final, Literal

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

log = logging.getLogger(__name__)

RETRY_AFTER_S: Final = 1
# FastAPI's native OpenTelemetry, off in both services: asking on every request whether a
# provider is configured cost ~7 % of a hot read under py-spy, for spans nobody exports.
FRAMEWORK_TELEMETRY: Final[TelemetryConfig] = {"tracing": False, "metrics": False, "logs": False}

HealthStatus = Literal["live", "ready", "not_ready", "failed"]


class Health(BaseModel):
    status: HealthStatus
    detail: str | None = None


class ErrorBody(BaseModel):
    detail: str


class IssueBody(BaseModel):
    """One reason a request was refused: where (`loc`), what (`msg`) and its kind (`type`)."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    detail: list[IssueBody]


def issues_response(issues: Iterable[IssueBody]) -> JSONResponse:
    body = [issue.model_dump() for issue in issues]
    return JSONResponse({"detail": body}, status_code=422)


def request_issues(exc: RequestValidationError) -> list[IssueBody]:
    """FastAPI's validation errors as issues, without echoing the input back."""
    return [
        IssueBody(
            loc=[
                p.encode("utf-8", "backslashreplace").decode() if isinstance(p, str) else p
                for p in err.get("loc", ())
            ],
            msg=str(err.get("msg", "invalid")),
            type=str(err.get("type", "invalid")),
        )
        for err in exc.errors()
    ]


def error_response(
    status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def unavailable_response(detail: str, **extra: Any) -> JSONResponse:
    """A 503 a client may retry: it always says when."""
    return error_response(503, detail, {"Retry-After": str(RETRY_AFTER_S)}, **extra)


def error_doc(description: str, model: type[Any] = ErrorBody) -> dict[str, Any]:
    """An OpenAPI `responses` entry for an error answer."""
    return {"model": model, "description": description}


def unavailable_doc(description: str) -> dict[str, Any]:
    return {
        **error_doc(description),
        "headers": {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        },
    }


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error")


def install_catch_all(app: FastAPI) -> None:
    """An error no handler maps is logged with its traceback and answered as JSON, never echoed."""
    app.add_exception_handler(Exception, _bug)


# GET /metrics as both services document it.
METRICS_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        "description": "Prometheus text format.",
    },
}


def metrics_response(registry: CollectorRegistry) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class EncodedResponse(Response):
    """An answer whose raw headers are given whole: Starlette's Response builds and encodes them
    again for every answer, a few per cent of a hot read."""

    def __init__(self, status: int, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status
        self.body = body
        self.raw_headers = raw_headers
        self.background = None


def model_json(model: BaseModel) -> bytes:
    """A response model's JSON, as pydantic writes it: built (and so checked) as the model,
    serialised once in pydantic-core, not validated again and re-encoded by the framework."""
    return model.__pydantic_serializer__.to_json(model)
