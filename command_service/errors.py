"""Errors to HTTP answers: the bodies clients get and the handlers that map exceptions to them.

Every refusal is a JSON object with `detail`; no input, however odd, is answered with a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from command_service.dependencies import services
from command_service.exceptions import (
    InvalidOrder,
    Issue,
    MalformedJson,
    PublishUnavailable,
    RequestTooLarge,
    UnsupportedMediaType,
)

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1


class ErrorBody(BaseModel):
    detail: str


class IssueBody(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    detail: list[IssueBody]


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _refused(request: Request, reason: str) -> None:
    services(request).metrics.rejected.labels(reason=reason).inc()


def _issues_response(found: list[Issue]) -> JSONResponse:
    body = [{"loc": list(i.loc), "msg": i.msg, "type": i.type} for i in found]
    return JSONResponse({"detail": body}, status_code=422)


async def _invalid_order(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidOrder)
    _refused(request, "validation")
    return _issues_response(exc.issues)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    _refused(request, "validation")
    return _issues_response([_issue(err) for err in exc.errors()])


def _issue(err: Any) -> Issue:
    loc = tuple(
        p.encode("utf-8", "backslashreplace").decode() if isinstance(p, str) else p
        for p in err.get("loc", ())
    )
    return Issue(loc, str(err.get("msg", "invalid")), str(err.get("type", "invalid")))


async def _malformed_json(request: Request, exc: Exception) -> JSONResponse:
    _refused(request, "malformed_json")
    return _error(400, str(exc))


async def _unsupported_media_type(request: Request, exc: Exception) -> JSONResponse:
    _refused(request, "unsupported_media_type")
    return _error(415, str(exc))


async def _too_large(request: Request, exc: Exception) -> JSONResponse:
    _refused(request, "too_large")
    return _error(413, str(exc))


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    services(request).metrics.unavailable.inc()
    log.warning("answering 503: %s", exc)
    return _error(503, str(exc), {"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(InvalidOrder, _invalid_order)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(MalformedJson, _malformed_json)
    app.add_exception_handler(UnsupportedMediaType, _unsupported_media_type)
    app.add_exception_handler(RequestTooLarge, _too_large)
    app.add_exception_handler(PublishUnavailable, _unavailable)
    app.add_exception_handler(Exception, _bug)
