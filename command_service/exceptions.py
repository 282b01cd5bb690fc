"""Errors of the command service, under one base class; each carries what its caller needs."""

from __future__ import annotations

from dataclasses import dataclass


class CommandError(Exception):
    """Base class of every error raised by `command_service`."""


@dataclass(frozen=True)
class Issue:
    """One reason a request was refused: where (`loc`), what (`msg`) and its kind (`type`)."""

    loc: tuple[str | int, ...]
    msg: str
    type: str


class InvalidOrder(CommandError):
    """The request is well-formed JSON but not a valid order."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, i.loc))}: {i.msg}" for i in issues))
        self.issues = issues


class MalformedJson(CommandError):
    """The request body is not JSON at all."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the request body is malformed JSON: {reason}")
        self.reason = reason


class UnsupportedMediaType(CommandError):
    def __init__(self, content_type: str | None) -> None:
        super().__init__(
            f"the request body must be application/json, not {content_type or 'unspecified'}"
        )
        self.content_type = content_type


class RequestTooLarge(CommandError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


class PublishUnavailable(CommandError):
    """The event could not be confirmed by Kafka in time; the order may or may not be recorded."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the order could not be recorded right now: {reason}")
        self.reason = reason


class TooManyOrders(CommandError):
    """The principal placed ORDERS_PER_MINUTE orders within the last minute."""

    def __init__(self, user_id: str, retry_after_s: int) -> None:
        super().__init__(f"too many orders for {user_id!r}; retry in {retry_after_s}s")
        self.user_id = user_id
        self.retry_after_s = retry_after_s
