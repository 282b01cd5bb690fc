"""Encoded answers kept for reuse: a read of a page that has not changed costs one point read.

An answer is a pure function of the user's view at its token (the user's version) and of the
request's parameters (http/conditional.py), so an entry keyed by those parameters is valid
exactly while the user's version is the one it was rendered at: a newer version is a miss, and
the entry is replaced. Nothing needs invalidating from the ingest thread, and a copy that
rebuilt its partition gives the same version to the same bytes.

Bounded by the bytes of the answers it holds, least recently used first out. Event loop only:
no lock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import NamedTuple

from shared.tokens import ConsistencyToken


class CachedPage(NamedTuple):
    token: ConsistencyToken
    etag: str
    body: bytes
    # The 200's raw headers (length, type, ETag, Cache-Control), encoded once.
    headers: tuple[tuple[bytes, bytes], ...] = ()


class PageCache:
    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._pages: OrderedDict[Hashable, CachedPage] = OrderedDict()

    def get(self, key: Hashable, current: Callable[[], ConsistencyToken]) -> CachedPage | None:
        """The page held for `key` if it was rendered at the `current` token (asked only when
        a page is held)."""
        page = self._pages.get(key)
        if page is None or page.token != current():
            return None
        self._pages.move_to_end(key)
        return page

    def put(self, key: Hashable, page: CachedPage) -> None:
        size = len(page.body)
        if size > self._max_bytes:
            return
        old = self._pages.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        self._pages[key] = page
        self._bytes += size
        while self._bytes > self._max_bytes:
            _, dropped = self._pages.popitem(last=False)
            self._bytes -= len(dropped.body)
