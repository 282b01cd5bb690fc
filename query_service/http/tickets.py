"""Stream tickets: EventSource cannot send an Authorization header, so a signed-in page first
asks for a ticket (with its bearer token) and opens the stream with it in the URL.

A ticket names one user and one purpose (that user's items stream) and expires within seconds;
it is an HMAC over those, so any instance holding the same secret accepts it and none keeps
state. It is not single-use: EventSource reconnects with the same URL after a dropped connection.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Final

from shared.exceptions import Forbidden, NotAuthenticated

PURPOSE: Final = "items-stream"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StreamTickets:
    def __init__(self, secret: bytes, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._ttl_s = ttl_s
        self._clock = clock

    def issue(self, user_id: str) -> tuple[str, int]:
        """A ticket for `user_id`'s stream, and when (Unix seconds) it expires."""
        expires = int(self._clock()) + self._ttl_s
        payload = f"{PURPOSE}\n{user_id}\n{expires}".encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}", expires

    def check(self, ticket: str, user_id: str) -> None:
        """NotAuthenticated unless `ticket` is ours and current; Forbidden if it is someone
        else's."""
        try:
            encoded, signature = ticket.split(".", 1)
            payload = _unb64(encoded)
            valid = hmac.compare_digest(_unb64(signature), self._sign(payload))
            purpose, owner, expires = payload.decode().split("\n")
        except ValueError:
            raise NotAuthenticated("malformed stream ticket") from None
        if not valid or purpose != PURPOSE:
            raise NotAuthenticated("invalid stream ticket")
        if int(expires) < self._clock():
            raise NotAuthenticated("expired stream ticket")
        if owner != user_id:
            raise Forbidden("the stream ticket is for another user")

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()
