"""Conditional reads: a strong ETag per answer, derived from what the answer is read from.

A page is a pure function of the user's view at its token (the user's version, see
view/layout.py) and of the request's parameters, rendered by this code's one format. So the
ETag names exactly those, and two answers have the same ETag exactly when they are the same
bytes: a client that sends it back in If-None-Match gets 304 without the page being read or
encoded.
"""

from __future__ import annotations

import hashlib
from typing import Final

from shared.tokens import ConsistencyToken

# Bumped whenever the rendering of any answer changes, so that no ETag outlives its bytes.
RENDER_FORMAT: Final = "1"
# Answers that may be cached (by the user's own browser) but must be revalidated each time.
CACHE_CONTROL: Final = "private, no-cache"


def etag(token: ConsistencyToken, kind: str, user_id: str, *params: object) -> str:
    """The tag of the `kind` answer about `user_id` with `params`, read at `token`."""
    digest = hashlib.blake2b(
        "\0".join((RENDER_FORMAT, kind, user_id, *map(repr, params))).encode(), digest_size=8
    ).hexdigest()
    return f'"{token.partition}.{token.offset}.{digest}"'


def none_match(if_none_match: str | None, current: str) -> bool:
    """Whether If-None-Match names `current` (weak comparison, as RFC 9110 has it for this
    header), or is `*`."""
    if if_none_match is None:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == current:
            return True
    return False
