"""Conditional reads and the fast path, over fakes: ETags name exactly the bytes of an answer,
304 only when the client holds the current one (never before a token's wait), and the fast path
answers what the framework's route answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.issuer import TestIssuer
from query_service.http.conditional import etag, none_match
from query_service.http.responses import items_json, items_out
from query_service.view.partitioning import partition_for
from query_service.view.projection import EMPTY_SUMMARY, Line, LineId, Summary
from query_service.view.reads import GroupPage, ItemsPage
from shared.tokens import ConsistencyToken
from tests.support import wait_for
from tests.unit.test_query_api import PARTITIONS, Harness, _harness


@pytest.fixture
def harness(tmp_path: Path, issuer: TestIssuer) -> Iterator[Harness]:
    yield from _harness(tmp_path, issuer)


def _place(harness: Harness, user: str, *items: tuple[str, int, int]) -> str:
    token = harness.place(user, *items)
    wait_for(
        lambda: (
            harness.client.get(
                f"/users/{user}/items", params={"consistency_token": token}
            ).status_code
            == 200
        ),
        10,
        f"{user}'s order applied",
    )
    return token


PATHS = ("/users/{u}/items", "/users/{u}/items?group=cheap", "/users/{u}/orders")


def test_a_matching_if_none_match_answers_304_with_the_same_etag(harness: Harness) -> None:
    _place(harness, "alice", ("TEA", 499, 2))
    for path in PATHS:
        first = harness.client.get(path.format(u="alice"))
        assert first.status_code == 200
        tag = first.headers["ETag"]
        assert tag.startswith('"')
        assert first.headers["Cache-Control"] == "private, no-cache"
        again = harness.client.get(path.format(u="alice"), headers={"If-None-Match": tag})
        assert again.status_code == 304, path
        assert again.headers["ETag"] == tag
        assert again.content == b""
        other = harness.client.get(path.format(u="alice"), headers={"If-None-Match": '"x"'})
        assert other.status_code == 200
        assert other.content == first.content


def test_if_none_match_star_is_a_304_only_for_an_answer_that_exists(harness: Harness) -> None:
    _place(harness, "alice", ("TEA", 499, 2))
    star = {"If-None-Match": "*"}
    assert harness.client.get("/users/alice/items", headers=star).status_code == 304
    missing = f"/users/alice/orders/{uuid.uuid4()}"
    assert harness.client.get(missing, headers=star).status_code == 404
    assert harness.client.get(missing).status_code == 404


def test_a_change_to_the_users_view_changes_every_etag_that_shows_it_and_no_other(
    harness: Harness,
) -> None:
    _place(harness, "alice", ("TEA", 499, 2))
    # bob in alice's partition: his orders move the partition's offset, not alice's view.
    bob = next(
        f"bob{n}"
        for n in range(1000)
        if partition_for(f"bob{n}", PARTITIONS) == partition_for("alice", PARTITIONS)
    )
    _place(harness, bob, ("MUG", 700, 1))
    before = {p: harness.client.get(p.format(u="alice")) for p in PATHS}
    _place(harness, bob, ("MUG", 700, 1))
    unchanged = {p: harness.client.get(p.format(u="alice")) for p in PATHS}
    for path in PATHS:
        assert unchanged[path].headers["ETag"] == before[path].headers["ETag"], path
        assert unchanged[path].content == before[path].content, path
    _place(harness, "alice", ("POT", 5001, 1))
    after = {p: harness.client.get(p.format(u="alice")) for p in PATHS}
    for path in PATHS:
        assert after[path].headers["ETag"] != before[path].headers["ETag"], path
        assert after[path].content != before[path].content, path


def test_a_token_not_yet_applied_waits_and_never_gets_a_304(harness: Harness) -> None:
    _place(harness, "alice", ("TEA", 499, 2))
    first = harness.client.get("/users/alice/items")
    ahead = ConsistencyToken(partition_for("alice", PARTITIONS), 10_000).encode()
    answer = harness.client.get(
        "/users/alice/items",
        params={"consistency_token": ahead, "wait_ms": 200},
        headers={"If-None-Match": first.headers["ETag"]},
    )
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]


def test_the_fast_path_answers_what_the_framework_answers(harness: Harness) -> None:
    _place(harness, "alice", ("TEA", 499, 2), ("POT", 5001, 1))
    # A repeated parameter is left to the framework; the same request once is the fast path's.
    for path, query in (
        ("/users/alice/items", "limit=1"),
        ("/users/alice/items", "group=expensive"),
        ("/users/alice/orders", "limit=5"),
    ):
        fast = harness.client.get(f"{path}?{query}")
        framework = harness.client.get(f"{path}?{query}&{query}")
        assert fast.status_code == framework.status_code == 200
        assert fast.content == framework.content
        assert fast.headers["ETag"] == framework.headers["ETag"]
        # The headers the framework's middlewares give, given by the fast path too, once each.
        for header in ("X-Served-By", "Content-Security-Policy", "X-Frame-Options"):
            assert fast.headers.get_list(header) == framework.headers.get_list(header)
            assert len(fast.headers.get_list(header)) == 1
    # Invalid parameters: the framework's 422s, through either way in.
    assert harness.client.get("/users/alice/items?limit=0").status_code == 422
    assert harness.client.get("/users/alice/items?group=cheapest").status_code == 422
    assert harness.client.get("/users/alice/items?wait_ms=-1").status_code == 422
    # A missing or foreign token: the framework's 401, and the same 403 either way.
    assert harness.client.get("/users/alice/items", auth=None).status_code == 401
    as_bob = harness.issuer.headers("bob")
    assert harness.client.get("/users/alice/items", headers=as_bob, auth=None).status_code == 403


def test_if_none_match_reads_lists_weak_tags_and_star() -> None:
    tag = etag(ConsistencyToken(0, 5), "items", "alice", None, None, 50)
    assert none_match(f'"a", {tag}', tag)
    assert none_match(f"W/{tag}", tag)
    assert none_match("*", tag)
    assert not none_match(None, tag)
    assert not none_match('"a"', tag)


_names = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12)
_lines = st.lists(
    st.tuples(
        st.text(alphabet="ABCXYZ019-", min_size=1, max_size=8),
        st.integers(1, 10**7),
        _names,
        st.integers(1, 10**6),
        st.integers(1, 10**4),
    ),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(
    user=st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True),
    groups=st.dictionaries(
        st.sampled_from(["cheap", "affordable", "expensive"]),
        st.tuples(_lines, st.none() | st.text(max_size=20), st.integers(0, 10**9)),
        min_size=0,
        max_size=3,
    ),
    offset=st.integers(-1, 10**9),
)
def test_the_hand_encoded_items_answer_is_what_pydantic_writes(
    user: str,
    groups: dict[str, tuple[list[tuple[str, int, str, int, int]], str | None, int]],
    offset: int,
) -> None:
    pages = {
        name: GroupPage(
            Summary(len(lines), total, len(lines)) if lines else EMPTY_SUMMARY,
            [(LineId(user, name, sku, price), Line(n, q, c)) for sku, price, n, q, c in lines],
            cursor,
        )
        for name, (lines, cursor, total) in groups.items()
    }
    page = ItemsPage(pages, ConsistencyToken(1, offset))
    assert items_json(user, page) == items_out(user, page).model_dump_json().encode()


def test_a_plain_read_skips_the_frameworks_dependency_solving(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _place(harness, "alice", ("TEA", 499, 2))
    solved: list[object] = []
    original = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        solved.append(kwargs.get("request"))
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    assert harness.client.get("/users/alice/items?limit=3").status_code == 200
    assert harness.client.get("/users/alice/orders").status_code == 200
    assert solved == []
    # Left to the framework: it solves the route's dependencies (and answers the same).
    assert harness.client.get("/users/alice/items?limit=3&limit=3").status_code == 200
    assert solved
