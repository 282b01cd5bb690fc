"""Errors to HTTP answers: the bodies clients get and the handlers that map exceptions to them.

Every refusal is a JSON object with `detail`; no input, however odd, is answered with a 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from command_service.dependencies import services
from command_service.exceptions import (
    InvalidOrder,
    MalformedJson,
    PublishUnavailable,
    RequestTooLarge,
    TooManyOrders,
    UnsupportedMediaType,
)
from shared.http import (
    IssueBody,
    error_response,
    install_catch_all,
    issues_response,
    request_issues,
    unavailable_response,
)

log = logging.getLogger(__name__)


def _refused(request: Request, reason: str) -> None:
    services(request).metrics.rejected.labels(reason=reason).inc()


async def _invalid_order(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidOrder)
    _refused(request, "validation")
    return issues_response(IssueBody(loc=list(i.loc), msg=i.msg, type=i.type) for i in exc.issues)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    _refused(request, "validation")
    return issues_response(request_issues(exc))


async def _malformed_json(request: Request, exc: Exception) -> JSONResponse:
    _refused(request, "malformed_json")
    return error_response(400, str(exc))


async def _unsupported_media_type(request: Request, exc: Exception) -> JSONResponse:
    _refused(request, "unsupported_media_type")
    return error_response(415, str(exc))


async def _too_large(request: Request, exc: Exception) -> JSONResponse:
    _refused(request, "too_large")
    return error_response(413, str(exc))


async def _too_many(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TooManyOrders)
    _refused(request, "rate_limited")
    return error_response(429, str(exc), {"Retry-After": str(exc.retry_after_s)})


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    services(request).metrics.unavailable.inc()
    log.warning("answering 503: %s", exc)
    return unavailable_response(str(exc))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(InvalidOrder, _invalid_order)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(MalformedJson, _malformed_json)
    app.add_exception_handler(UnsupportedMediaType, _unsupported_media_type)
    app.add_exception_handler(RequestTooLarge, _too_large)
    app.add_exception_handler(PublishUnavailable, _unavailable)
    app.add_exception_handler(TooManyOrders, _too_many)
    install_catch_all(app)
