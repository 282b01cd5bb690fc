"""Errors to HTTP answers: every refusal is a JSON object with `detail`, every 503 a Retry-After,
and an error no handler maps is a logged 500.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from query_service.cluster.forwarding import NOT_HELD_HEADER
from query_service.exceptions import (
    CheckpointUnavailable,
    ForeignToken,
    HandoffBusy,
    MalformedCursor,
    NoCopyAvailable,
    NotYetConsistent,
    OrderNotFound,
    PartitionNotHeld,
    TooBusy,
    TooManyStreams,
    UnknownPartition,
)
from query_service.http.dependencies import services
from shared.exceptions import MalformedToken
from shared.http import (
    RETRY_AFTER_S,
    ErrorBody,
    error_response,
    install_catch_all,
    issues_response,
    request_issues,
    unavailable_response,
)


class NotYetConsistentBody(ErrorBody):
    partition: int
    requested_offset: int
    applied_offset: int
    applied_offsets: dict[int, int]


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return issues_response(request_issues(exc))


async def _malformed(_: Request, exc: Exception) -> JSONResponse:
    return error_response(400, str(exc))


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return error_response(404, str(exc))


async def _not_yet(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotYetConsistent)
    return unavailable_response(
        str(exc),
        partition=exc.partition,
        requested_offset=exc.requested_offset,
        applied_offset=exc.applied_offset,
        applied_offsets=services(request).positions.applied_offsets(),
    )


async def _no_copy(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NoCopyAvailable)
    return unavailable_response(str(exc), partition=exc.partition)


async def _not_held(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PartitionNotHeld)
    answer = unavailable_response(str(exc), partition=exc.partition)
    answer.headers[NOT_HELD_HEADER] = "1"
    return answer


async def _too_busy(_: Request, exc: Exception) -> JSONResponse:
    return unavailable_response(str(exc))


async def _too_many_streams(_: Request, exc: Exception) -> JSONResponse:
    return error_response(429, str(exc), {"Retry-After": str(RETRY_AFTER_S)})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(MalformedToken, _malformed)
    app.add_exception_handler(UnknownPartition, _malformed)
    app.add_exception_handler(MalformedCursor, _malformed)
    app.add_exception_handler(ForeignToken, _malformed)
    app.add_exception_handler(NoCopyAvailable, _no_copy)
    app.add_exception_handler(PartitionNotHeld, _not_held)
    app.add_exception_handler(OrderNotFound, _not_found)
    app.add_exception_handler(NotYetConsistent, _not_yet)
    app.add_exception_handler(TooBusy, _too_busy)
    app.add_exception_handler(HandoffBusy, _too_busy)
    app.add_exception_handler(CheckpointUnavailable, _not_found)
    app.add_exception_handler(TooManyStreams, _too_many_streams)
    install_catch_all(app)
