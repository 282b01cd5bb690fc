"""Errors of the shared domain, under one base class."""

from __future__ import annotations


class SharedError(Exception):
    """Base class of every error raised by `shared`."""


class InvalidAmount(SharedError, ValueError):
    """A money amount that is not a positive number of pounds with at most 2 decimal places."""


class MalformedToken(SharedError, ValueError):
    """A consistency token that does not parse."""

    def __init__(self, token: str, reason: str) -> None:
        super().__init__(f"malformed consistency token {token[:80]!r}: {reason}")
        self.token = token
        self.reason = reason


class EventDecodeError(SharedError):
    """A record that is not a valid OrderPlaced event; `kind` names the failure for the DLQ."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class NotAuthenticated(SharedError):
    """No bearer token, or one that does not verify: answered 401 with WWW-Authenticate."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Forbidden(SharedError):
    """An authenticated principal asking for what is not theirs: answered 403."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SchemaRejected(SharedError):
    """The schema registry refused the topic's schema, or could not be asked."""
