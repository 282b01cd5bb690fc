"""The chaos run's stream watcher: its fold of snapshot and delta events (hand-written in the
service's format, and real ones made by the projection and the response mapping) against the
oracle, and its reconnects against scripted answers (httpx's MockTransport, no sockets)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.client import CATALOGUE
from chaos.streams import StreamView, StreamViolation, StreamWatcher, expected_groups
from query_service.http.positions import ViewChange
from query_service.http.responses import delta_out, items_json
from query_service.view.decoding import placed
from query_service.view.projection import (
    EMPTY_SUMMARY,
    GROUPS,
    Line,
    LineId,
    Summary,
    SummaryId,
    fold,
)
from query_service.view.reads import GroupPage, ItemsPage
from shared.tokens import ConsistencyToken
from tests.factories import order
from tests.oracle import ExpectedGroup, ExpectedView, expected_views

USER = "u1"


def line(sku: str, price: str, quantity: int, orders: int = 1) -> dict[str, Any]:
    return {
        "sku": sku,
        "name": f"Item {sku}",
        "unit_price": price,
        "quantity": quantity,
        "order_count": orders,
    }


def group(total: str, *lines: dict[str, Any], cursor: str | None = None) -> dict[str, Any]:
    count = sum(ln["quantity"] for ln in lines)
    return {
        "item_count": count,
        "total": total,
        "line_count": len(lines),
        "lines": list(lines),
        "next_cursor": cursor,
    }


EMPTY = group("0.00")


def snapshot(**groups: dict[str, Any]) -> dict[str, Any]:
    return {
        "user_id": USER,
        "groups": {"cheap": EMPTY, "affordable": EMPTY, "expensive": EMPTY, **groups},
        "consistency_token": "v1:0:4",
    }


def delta(lines: list[dict[str, Any]], groups: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"lines": lines, "groups": groups}


def summary(item_count: int, total: str, line_count: int) -> dict[str, Any]:
    return {"item_count": item_count, "total": total, "line_count": line_count}


def test_a_snapshot_then_deltas_fold_into_the_oracles_shape() -> None:
    view = StreamView(USER)
    view.apply("snapshot", snapshot(cheap=group("1.00", line("S", "1.00", 1))), "0:4")
    view.apply(
        "delta",
        delta(
            [{**line("T", "60.00", 2), "group": "expensive"}],
            {"expensive": summary(2, "120.00", 1)},
        ),
        "0:9",
    )
    view.apply(
        "delta",
        delta([{**line("S", "1.00", 4, 2), "group": "cheap"}], {"cheap": summary(4, "4.00", 1)}),
        "0:12",
    )

    assert view.groups() == {
        "cheap": ExpectedGroup({("S", 100): ("Item S", 4, 2)}, 4, 400),
        "affordable": ExpectedGroup(),
        "expensive": ExpectedGroup({("T", 6000): ("Item T", 2, 1)}, 2, 12000),
    }
    assert (view.last_event_id, view.snapshots, view.deltas) == ("0:12", 1, 2)


def test_a_snapshot_replaces_everything_held() -> None:
    view = StreamView(USER)
    view.apply("snapshot", snapshot(cheap=group("1.00", line("S", "1.00", 1))), "0:4")
    view.apply("snapshot", snapshot(affordable=group("5.00", line("M", "5.00", 1))), "0:7")

    assert view.groups() == {
        "cheap": ExpectedGroup(),
        "affordable": ExpectedGroup({("M", 500): ("Item M", 1, 1)}, 1, 500),
        "expensive": ExpectedGroup(),
    }
    assert (view.last_event_id, view.snapshots) == ("0:7", 2)


def test_moved_changes_nothing_but_its_count() -> None:
    view = StreamView(USER)
    view.apply("snapshot", snapshot(), "0:4")
    view.apply("moved", {})

    assert (view.groups(), view.last_event_id, view.moved) == (ExpectedView().groups, "0:4", 1)


def test_a_user_without_orders_is_the_oracles_empty_view() -> None:
    assert StreamView(USER).groups() == expected_groups({}, USER) == ExpectedView().groups
    view = StreamView(USER)
    view.apply("snapshot", snapshot(), "0:4")
    assert view.groups() == expected_groups(expected_views([]), USER)


def test_a_delta_repeating_what_the_snapshot_held_is_counted_not_refused() -> None:
    view = StreamView(USER)
    view.apply("snapshot", snapshot(cheap=group("1.00", line("S", "1.00", 1))), "0:4")
    view.apply(
        "delta",
        delta([{**line("S", "1.00", 1), "group": "cheap"}], {"cheap": summary(1, "1.00", 1)}),
        "0:6",
    )
    assert (view.repeated_lines, view.deltas) == (1, 1)


@pytest.mark.parametrize(
    ("event_id", "payload", "message"),
    [
        ("0:4", delta([], {}), "sent twice"),
        (None, delta([], {}), "sent twice"),
        (
            "0:9",
            delta([{**line("S", "1.00", 1), "group": "cheap"}], {}),
            "went from",
        ),
        ("0:9", delta([], {"cheap": summary(3, "3.00", 1)}), "its lines make"),
    ],
)
def test_a_delta_breaking_the_contract_is_refused(
    event_id: str | None, payload: dict[str, Any], message: str
) -> None:
    view = StreamView(USER)
    view.apply("snapshot", snapshot(cheap=group("2.00", line("S", "1.00", 2))), "0:4")
    with pytest.raises(StreamViolation, match=message):
        view.apply("delta", payload, event_id)


@pytest.mark.parametrize(
    ("event", "payload", "message"),
    [
        ("delta", delta([], {}), "before any snapshot"),
        ("snapshot", snapshot(cheap=group("1.00", line("S", "1.00", 1), cursor="c")), "page"),
        ("snapshot", {**snapshot(), "user_id": "u2"}, "not of"),
        ("snapshot", snapshot(cheap=group("1.50", line("S", "1.00", 1))), "its lines make"),
        ("snapshot", snapshot(cheap=group("1.00", line("S", "1.001", 1))), "pence"),
        ("message", {}, "unknown event"),
    ],
)
def test_what_the_fold_cannot_trust_is_refused_loudly(
    event: str, payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(StreamViolation, match=message):
        StreamView(USER).apply(event, payload, "0:4")


# --- real events: the projection's fold, and the service's own mapping to SSE payloads ---

Item = tuple[str, int, int]
orders = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from([(sku, pence) for sku, _, pence in CATALOGUE]),
            st.integers(1, 5),
        ).map(lambda t: (t[0][0], t[0][1], t[1])),
        min_size=1,
        max_size=3,
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(orders=orders, seed=st.integers(0, 2**32))
def test_real_snapshots_and_deltas_fold_to_the_oracles_view(
    orders: list[list[Item]], seed: int
) -> None:
    rng = random.Random(seed)
    events = [order(USER, *items) for items in orders]
    # Batches of the user's events; other users' events fall between and after them, so the
    # partition's position (a delta's id) runs ahead of the user's version (a snapshot's id).
    batches: list[tuple[list[Any], int]] = []
    offset = 0
    pending: list[Any] = []
    for event in events:
        offset += rng.randint(1, 3)
        pending.append(placed(event, b"", offset))
        if rng.random() < 0.5:
            offset += rng.randint(0, 2)
            batches.append((pending, offset))
            pending = []
    if pending:
        batches.append((pending, offset + rng.randint(0, 2)))

    lines: dict[LineId, Line] = {}
    summaries: dict[SummaryId, Summary] = {}
    counts: dict[str, int] = {}
    sent: list[tuple[str, dict[str, Any], str]] = []
    at = rng.randint(0, len(batches))  # the snapshot reads the store after this many batches
    for n, (batch, applied_offset) in enumerate(batches, start=1):
        changes = fold(batch, lines, summaries, counts)
        lines.update(changes.lines)
        summaries.update(changes.summaries)
        counts.update(changes.order_counts)
        if n == at:
            sent.append(snapshot_event(lines, summaries, batch[-1].offset))
        if n >= at:  # the snapshot's own batch may come again: the server's quirk
            change = ViewChange(
                applied_offset,
                dict(changes.lines),
                {key.group: value for key, value in changes.summaries.items()},
            )
            if n > at or applied_offset > batch[-1].offset:
                data = orjson.loads(delta_out(change).model_dump_json())
                sent.append(("delta", data, f"0:{applied_offset}"))
    if at == 0:
        sent.insert(0, snapshot_event({}, {}, 0))

    view = StreamView(USER)
    for name, data, event_id in sent:
        view.apply(name, data, event_id)
    assert view.groups() == expected_groups(expected_views(events), USER)


def snapshot_event(
    lines: dict[LineId, Line], summaries: dict[SummaryId, Summary], offset: int
) -> tuple[str, dict[str, Any], str]:
    pages = {
        name: GroupPage(
            summaries.get(SummaryId(USER, name), EMPTY_SUMMARY),
            sorted((k, v) for k, v in lines.items() if k.group == name),
            None,
        )
        for name in GROUPS
    }
    body = items_json(USER, ItemsPage(pages, ConsistencyToken(0, offset)))
    return "snapshot", orjson.loads(body), f"0:{offset}"


# --- the watcher's connections, scripted ---

Answer = Callable[[httpx.Request], httpx.Response]


def sse(*events: tuple[str, dict[str, Any], str | None]) -> bytes:
    out = b": ping\r\n\r\n"
    for name, data, event_id in events:
        out += f"event: {name}\r\ndata: {orjson.dumps(data).decode()}\r\n".encode()
        if event_id is not None:
            out += f"id: {event_id}\r\n".encode()
        if name == "moved":
            out += b"retry: 1000\r\n"
        out += b"\r\n"
    return out


def streamed(served_by: str, body: bytes, then: BaseException | None) -> httpx.Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield body
        if then is None:
            await asyncio.Event().wait()  # an open stream with nothing more to say
        else:
            raise then

    return httpx.Response(
        200,
        headers={"content-type": "text/event-stream", "X-Served-By": served_by},
        content=chunks(),
    )


CHEAP_S = snapshot(cheap=group("1.00", line("S", "1.00", 1)))
GROWN = delta([{**line("S", "1.00", 3, 2), "group": "cheap"}], {"cheap": summary(3, "3.00", 1)})
NEW_T = delta(
    [{**line("T", "60.00", 1), "group": "expensive"}], {"expensive": summary(1, "60.00", 1)}
)


def test_the_watcher_reconnects_resumes_and_settles_on_the_oracles_view() -> None:
    seen: list[httpx.Request] = []
    script: list[Answer] = [
        lambda _: httpx.Response(429, headers={"Retry-After": "30"}),
        lambda _: streamed(
            "q1", sse(("snapshot", CHEAP_S, "0:4"), ("delta", GROWN, "0:8")), httpx.ReadError("")
        ),
        lambda _: streamed("q2", sse(("delta", NEW_T, "0:11"), ("moved", {}, None)), None),
        lambda _: streamed("q3", b"", None),
    ]

    last_connected = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(script) == 1:
            last_connected.set()
        return script.pop(0)(request)

    want = expected_groups(
        expected_views(
            [order(USER, ("S", 100, 1)), order(USER, ("S", 100, 2)), order(USER, ("T", 6000, 1))]
        ),
        USER,
    )
    urls = ["http://q1", "http://q2"]
    watcher = StreamWatcher(
        USER,
        urls,
        random.Random(1),
        lambda: {"Authorization": "Bearer t"},
        httpx.MockTransport(answer),
    )

    async def scenario() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(watcher.run(stop))
        started = time.monotonic()
        assert await watcher.settle(want, 10)
        await asyncio.wait_for(last_connected.wait(), 5)
        # Three pauses of at most 1 s each (Retry-After is capped): well inside 30 s.
        assert time.monotonic() - started < 4
        stop.set()
        await asyncio.wait_for(running, 1)

    asyncio.run(scenario())

    assert [r.headers.get("Last-Event-ID") for r in seen] == [None, None, "0:8", "0:11"]
    assert {r.headers["Authorization"] for r in seen} == {"Bearer t"}
    assert {r.url.path for r in seen} == {f"/users/{USER}/items/stream"}
    assert watcher.connects == {"q1": 1, "q2": 1, "q3": 1}
    assert watcher.errors == {"status 429": 1, "ReadError": 1, "moved": 1}
    assert watcher.violations == []
    view = watcher.view
    assert (view.snapshots, view.deltas, view.moved, view.reconnects) == (1, 2, 1, 3)


def test_a_violation_is_recorded_and_the_next_connection_starts_afresh() -> None:
    seen: list[httpx.Request] = []
    script: list[Answer] = [
        lambda _: streamed("q1", sse(("delta", GROWN, "0:8")), httpx.RemoteProtocolError("")),
        lambda _: streamed("q1", sse(("snapshot", CHEAP_S, "0:4")), None),
    ]

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return script.pop(0)(request)

    watcher = StreamWatcher(
        USER, ["http://q1"], random.Random(2), dict, httpx.MockTransport(answer)
    )
    want = expected_groups(expected_views([order(USER, ("S", 100, 1))]), USER)

    async def scenario() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(watcher.run(stop))
        assert await watcher.settle(want, 5)
        stop.set()
        await asyncio.wait_for(running, 1)

    asyncio.run(scenario())

    assert [r.headers.get("Last-Event-ID") for r in seen] == [None, None]
    assert len(watcher.violations) == 1
    assert "before any snapshot" in watcher.violations[0]
    assert watcher.errors == {"violation": 1}


def test_settle_says_no_when_the_view_never_gets_there() -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        return streamed("q1", sse(("snapshot", snapshot(), "0:4")), None)

    watcher = StreamWatcher(
        USER, ["http://q1"], random.Random(3), dict, httpx.MockTransport(answer)
    )
    want = expected_groups(expected_views([order(USER, ("S", 100, 1))]), USER)

    async def scenario() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(watcher.run(stop))
        assert not await watcher.settle(want, 0.5)
        stop.set()
        await asyncio.wait_for(running, 1)

    asyncio.run(scenario())
    assert watcher.view.snapshots == 1


def test_settle_needs_a_snapshot_even_for_a_user_without_orders() -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "1"})

    watcher = StreamWatcher(
        USER, ["http://q1"], random.Random(4), dict, httpx.MockTransport(answer)
    )

    async def scenario() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(watcher.run(stop))
        assert not await watcher.settle(expected_groups({}, USER), 0.5)
        stop.set()
        await asyncio.wait_for(running, 1)

    asyncio.run(scenario())
    assert watcher.errors["status 503"] >= 1
    assert watcher.connects == {}


def test_a_connection_gone_silent_is_given_up_and_replaced() -> None:
    """A real socket (in-process): an instance SIGKILLed behind a cut network sends nothing,
    not even a FIN; the read timeout notices, and the watcher connects again."""
    body = sse(("snapshot", CHEAP_S, "0:4"))
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Served-By: q1\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )

    async def scenario() -> StreamWatcher:
        connected = 0
        second = asyncio.Event()
        release = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connected
            await reader.readuntil(b"\r\n\r\n")
            writer.write(head + body)
            connected += 1
            if connected == 2:
                second.set()
            await release.wait()
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        watcher = StreamWatcher(
            USER, [f"http://127.0.0.1:{port}"], random.Random(5), dict, read_timeout_s=0.3
        )
        stop = asyncio.Event()
        running = asyncio.create_task(watcher.run(stop))
        await asyncio.wait_for(second.wait(), 5)
        stop.set()
        await asyncio.wait_for(running, 1)
        release.set()
        server.close()
        await server.wait_closed()
        return watcher

    watcher = asyncio.run(scenario())
    assert watcher.errors["ReadTimeout"] >= 1
    assert watcher.connects["q1"] >= 2
    assert watcher.violations == []
