"""ETags over random folds, over fakes: two answers about one resource have the same ETag exactly
when they are the same bytes, whatever the orders, prices and batches, through the fast path or
the framework's route; 304 only for a GET, and never before the read's token is applied.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.issuer import TestIssuer
from query_service.http.conditional import CACHE_CONTROL
from query_service.view import cursors
from query_service.view.partitioning import partition_for
from query_service.view.projection import GROUPS
from shared.events import OrderPlaced
from shared.money import MAX_UNIT_PRICE_MINOR
from shared.tokens import ConsistencyToken
from tests.factories import order
from tests.support import wait_for
from tests.unit.test_query_api import PARTITIONS, Harness, _harness
from tests.unit.test_query_conditional import _place

Resource = tuple[str, tuple[tuple[str, str], ...]]

# Few skus, so that orders share lines; prices on every group's edges and anywhere inside.
SKUS: Final = ("TEA", "MUG", "POT")
BUYERS: Final = 3
# Pages followed through next_cursor per listing: enough to see cursors, bounded in time.
MAX_PAGES: Final = 3

_prices = st.one_of(
    st.sampled_from([1, 499, 500, 5000, 5001, MAX_UNIT_PRICE_MINOR]),
    st.integers(1, 499),
    st.integers(500, 5000),
    st.integers(5001, MAX_UNIT_PRICE_MINOR),
)
_items = st.lists(
    st.tuples(st.sampled_from(SKUS), _prices, st.integers(1, 3)), min_size=1, max_size=3
)
# (buyer, items, sent twice: the duplicate must change nothing)
_orders = st.lists(st.tuples(st.integers(0, BUYERS - 1), _items, st.booleans()), max_size=8)
_runs = itertools.count()


@pytest.fixture(scope="module")
def shared_harness(
    tmp_path_factory: pytest.TempPathFactory, issuer: TestIssuer
) -> Iterator[Harness]:
    # One app for every example (each example's users are its own): an app per example would
    # cost more than the example.
    yield from _harness(tmp_path_factory.mktemp("etags"), issuer)


@pytest.fixture
def harness(tmp_path: Path, issuer: TestIssuer) -> Iterator[Harness]:
    yield from _harness(tmp_path, issuer)


class Answers:
    """Every 200 answer seen, checked as it comes: an ETag names one body (across resources),
    and a resource's body has one ETag. Reads go through the fast path or, with a parameter
    repeated, the framework's route, at random; some also send a tag seen earlier for the same
    resource, which must be answered 304 exactly when it is the current one."""

    def __init__(self, client: httpx.Client, rng: random.Random) -> None:
        self._client = client
        self.rng = rng
        self.body_of: dict[str, bytes] = {}
        self.tag_of: dict[Resource, dict[bytes, str]] = {}
        self.last_tag: dict[Resource, str] = {}

    def get(
        self, path: str, params: list[tuple[str, str]], token: ConsistencyToken
    ) -> dict[str, Any]:
        resource: Resource = (path.lower(), tuple(sorted(params)))
        # wait_ms names no part of the answer; twice, it leaves the request to the framework.
        query = params + [("wait_ms", "5000")] * self.rng.choice((0, 1, 2))
        answer = self._client.get(path, params=tuple(query))
        assert answer.status_code == 200, (path, query, answer.text)
        assert answer.headers["Cache-Control"] == CACHE_CONTROL
        tag, body = answer.headers["ETag"], answer.content
        assert self.body_of.setdefault(tag, body) == body, f"{tag} names two bodies"
        known = self.tag_of.setdefault(resource, {})
        assert known.setdefault(body, tag) == tag, f"one body of {resource} has two tags"
        earlier = self.last_tag.get(resource)
        if earlier is not None and self.rng.random() < 0.5:
            again = self._client.get(path, params=tuple(query), headers={"If-None-Match": earlier})
            if earlier == tag:
                assert again.status_code == 304, (resource, again.text)
                assert again.content == b""
            else:
                assert again.status_code == 200, (resource, again.text)
                assert again.content == body
            assert again.headers["ETag"] == tag
        self.last_tag[resource] = tag
        found: dict[str, Any] = answer.json()
        # Fresh too: read at the user's version (an ETag and body that agree could be stale).
        assert found["consistency_token"] == token.encode(), (resource, found)
        return found


def _read_everything(
    answers: Answers,
    user: str,
    applied: list[OrderPlaced],
    token: ConsistencyToken,
    lines: int,
    orders: int,
) -> None:
    def get(path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        return answers.get(path, params, token)

    items = f"/users/{user}/items"
    limit = [("limit", str(lines))]
    listings: list[tuple[str | None, dict[str, Any]]] = [
        (None, get(items, limit)),
        *((group, get(items, [("group", group), *limit])) for group in GROUPS),
    ]
    get(items, [])
    for named, page in listings:
        for group, shown in page["groups"].items():
            cursor, pages = shown["next_cursor"], 1
            while cursor is not None and pages < MAX_PAGES:
                narrowed = [] if named is None else [("group", named)]
                following = get(items, [*narrowed, ("cursor", cursor), *limit])
                cursor, pages = following["groups"][group]["next_cursor"], pages + 1
    listed = get(f"/users/{user}/orders", [("limit", str(orders))])
    cursor, pages = listed["next_cursor"], 1
    while cursor is not None and pages < MAX_PAGES:
        listed = get(f"/users/{user}/orders", [("cursor", cursor), ("limit", str(orders))])
        cursor, pages = listed["next_cursor"], pages + 1
    get(f"/users/{user}/orders", [])
    for event in {id(e): e for e in applied[:1] + applied[-1:]}.values():
        # Upper case: a form only the framework's route reads; the same resource.
        order_id = str(event.order_id)
        shown = order_id.upper() if answers.rng.random() < 0.5 else order_id
        get(f"/users/{user}/orders/{shown}", [])


def _apply(harness: Harness, segment: list[tuple[OrderPlaced, bool]]) -> dict[str, int]:
    """Append `segment` to the log and wait until the view has applied all of it; the offset of
    each buyer's last order (their version: a duplicate applies nothing)."""
    versions: dict[str, int] = {}
    last: dict[int, tuple[str, int]] = {}
    for event, twice in segment:
        partition = partition_for(event.user_id, PARTITIONS)
        offset = versions[event.user_id] = harness.log.append_event(partition, event)
        if twice:
            offset = harness.log.append_event(partition, event)
        last[partition] = (event.user_id, offset)
    for partition, (user, offset) in last.items():
        token = ConsistencyToken(partition, offset).encode()
        applied = harness.client.get(
            f"/users/{user}/items", params={"consistency_token": token, "wait_ms": 20_000}
        )
        assert applied.status_code == 200, applied.text
    return versions


@settings(max_examples=12, deadline=None)
@given(
    orders=_orders,
    cuts=st.sets(st.integers(1, 7), max_size=3),
    lines=st.integers(1, 3),
    orders_limit=st.integers(1, 3),
    rng=st.randoms(use_true_random=False),
)
def test_two_answers_have_one_etag_exactly_when_they_are_the_same_bytes(
    shared_harness: Harness,
    orders: list[tuple[int, list[tuple[str, int, int]], bool]],
    cuts: set[int],
    lines: int,
    orders_limit: int,
    rng: random.Random,
) -> None:
    run = next(_runs)
    # A user who never orders reads at the partition's position: their answers change too.
    users = [f"r{run}-u{k}" for k in range(BUYERS)] + [f"r{run}-idle"]
    events = [(order(users[buyer], *items), twice) for buyer, items, twice in orders]
    answers = Answers(shared_harness.client, rng)
    applied: dict[str, list[OrderPlaced]] = {user: [] for user in users}
    versions: dict[str, int] = {}
    bounds = [0, *sorted(cut for cut in cuts if cut < len(events)), len(events)]
    for start, end in itertools.pairwise(bounds):
        # Each segment applied (in one batch or several), then everything read at that point.
        versions |= _apply(shared_harness, events[start:end])
        for event, _ in events[start:end]:
            applied[event.user_id].append(event)
        for user in users:
            partition = partition_for(user, PARTITIONS)
            # Without orders, the partition's position (all of it applied by now).
            version = versions.get(user, shared_harness.log.end(partition) - 1)
            token = ConsistencyToken(partition, version)
            _read_everything(answers, user, applied[user], token, lines, orders_limit)


READS = ("/users/alice/items", "/users/alice/items?group=cheap", "/users/alice/orders")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_matching_tag_on_another_method_than_get_is_never_a_304(
    harness: Harness, method: str
) -> None:
    event = order("alice", ("TEA", 499, 2))
    partition = partition_for("alice", PARTITIONS)
    token = ConsistencyToken(partition, harness.log.append_event(partition, event)).encode()
    for path in (*READS, f"/users/alice/orders/{event.order_id}"):
        read = harness.client.get(path, params={"consistency_token": token})
        assert read.status_code == 200
        for tag in (read.headers["ETag"], "*"):
            answer = harness.client.request(method, path, headers={"If-None-Match": tag})
            assert answer.status_code == 405, (method, path, answer.status_code)
            assert "ETag" not in answer.headers


def test_head_is_answered_as_get_without_the_content(harness: Harness) -> None:
    # RFC 9110 9.3.2 and 13.2.1: as GET, without the content, and conditional as GET is; the
    # fast path's and the framework's (a repeated parameter goes there) alike.
    _place(harness, "alice", ("TEA", 499, 2))
    for read_path in READS:
        repeated = ("&" if "?" in read_path else "?") + "wait_ms=10&wait_ms=10"
        for path in (read_path, read_path + repeated):
            read = harness.client.get(path)
            tag = read.headers["ETag"]
            head = harness.client.head(path)
            assert head.status_code == 200, (path, head.status_code)
            assert head.content == b""
            assert head.headers["ETag"] == tag
            assert head.headers["Content-Length"] == str(len(read.content))
            matched = harness.client.head(path, headers={"If-None-Match": tag})
            assert matched.status_code == 304
            assert matched.headers["ETag"] == tag


def test_if_none_match_star_does_not_hide_a_bad_cursor(harness: Harness) -> None:
    # RFC 9110 13.2.1: a precondition is ignored when the answer without it would not be a
    # 2xx. (A missing order's 404 is test_query_conditional's.)
    _place(harness, "alice", ("TEA", 499, 2))
    star = {"If-None-Match": "*"}
    for path, bobs in (
        ("/users/alice/items", cursors.encode(cursors.LinesCursor("bob", "cheap", "TEA", 499))),
        ("/users/alice/orders", cursors.encode(cursors.OrdersCursor("bob", 1))),
    ):
        for cursor in ("bad", bobs):
            answer = harness.client.get(path, params={"cursor": cursor}, headers=star)
            assert answer.status_code == 400, (path, cursor, answer.status_code)


def _waiters(harness: Harness) -> float:
    text = harness.client.get("/metrics", headers=harness.operator()).text
    for line in text.splitlines():
        if line.startswith("query_read_your_writes_waiters "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no query_read_your_writes_waiters metric")


def test_a_read_of_a_token_ahead_is_answered_only_once_its_offset_is_applied(
    harness: Harness,
) -> None:
    _place(harness, "alice", ("TEA", 499, 2))
    partition = partition_for("alice", PARTITIONS)
    bob = next(f"bob{n}" for n in range(1000) if partition_for(f"bob{n}", PARTITIONS) == partition)
    tag = harness.client.get("/users/alice/items").headers["ETag"]
    # The next offset of alice's partition is first bob's order (alice's view unchanged at it:
    # 304 once applied), then alice's own (a new answer once applied).
    for buyer, status in ((bob, 304), ("alice", 200)):
        ahead = ConsistencyToken(partition, harness.log.end(partition))
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                harness.client.get,
                "/users/alice/items",
                params={"consistency_token": ahead.encode(), "wait_ms": 30_000},
                headers={"If-None-Match": tag},
            )
            wait_for(lambda: _waiters(harness) == 1, 10, "the read to wait for its token")
            assert not pending.done(), pending.result().status_code
            assert harness.log.append_event(partition, order(buyer, ("POT", 5001, 1))) == (
                ahead.offset
            )
            answer = pending.result(timeout=30)
        assert answer.status_code == status, answer.text
        if status == 304:
            assert answer.headers["ETag"] == tag
        else:
            assert answer.headers["ETag"] != tag
            assert ConsistencyToken.parse(answer.json()["consistency_token"]) == ahead
            assert answer.json()["groups"]["expensive"]["lines"][0]["sku"] == "POT"
