"""The page cache: an entry is valid only at the token it was rendered at, and the bytes held
stay within the bound, least recently used out first."""

from __future__ import annotations

from query_service.http.page_cache import CachedPage, PageCache
from shared.tokens import ConsistencyToken

AT_5 = ConsistencyToken(0, 5)
AT_6 = ConsistencyToken(0, 6)


def page(token: ConsistencyToken, size: int) -> CachedPage:
    return CachedPage(token, f'"{token.offset}"', b"x" * size)


def test_an_entry_is_found_only_at_its_token() -> None:
    cache = PageCache(100)
    cache.put("alice", page(AT_5, 10))
    assert cache.get("alice", lambda: AT_5) == page(AT_5, 10)
    assert cache.get("alice", lambda: AT_6) is None
    cache.put("alice", page(AT_6, 20))  # the newer rendering replaces the old
    assert cache.get("alice", lambda: AT_5) is None
    assert cache.get("alice", lambda: AT_6) == page(AT_6, 20)


def test_the_least_recently_used_go_first_and_the_bytes_stay_bounded() -> None:
    cache = PageCache(30)
    for key in ("a", "b", "c"):
        cache.put(key, page(AT_5, 10))
    assert cache.get("a", lambda: AT_5) is not None  # now the most recently used
    cache.put("d", page(AT_5, 10))
    assert [cache.get(key, lambda: AT_5) is not None for key in "abcd"] == [True, False, True, True]
    cache.put("big", page(AT_5, 31))  # larger than the whole bound: not kept, nothing evicted
    assert cache.get("big", lambda: AT_5) is None
    assert [cache.get(key, lambda: AT_5) is not None for key in "acd"] == [True, True, True]
