"""The forwarding adapter (cluster.forwarding.Forwarder) against instances served on loopback:
it only waits, forwards and maps; where a read goes is routing's (test_cluster.py)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from query_service.cluster.forwarding import (
    FORWARDED_HEADER,
    NOT_HELD_HEADER,
    ForwardedAnswer,
    Forwarder,
    ReadRequest,
)
from query_service.cluster.model import ClusterView, Member, PartitionState
from query_service.exceptions import NoCopyAvailable
from query_service.metrics import QueryMetrics
from shared.tokens import ConsistencyToken

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Far below the origin's 15 s pings: a stream relayed under any read timeout would break.
CONNECT_S = 0.1


@asynccontextmanager
async def instance(handler: Handler) -> AsyncIterator[str]:
    """An instance answering every GET with `handler`; its URL."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def copy(name: str, url: str, applied: int) -> Member:
    return Member(name, url, 1_000, {0: PartitionState(applied, 0, True)})


@asynccontextmanager
async def forwarder(*others: Member) -> AsyncIterator[Forwarder]:
    """This instance ("a") holds nothing; `others` hold caught-up copies of partition 0."""
    members = {"a": Member("a", "http://a", 1_000), **{m.instance_id: m for m in others}}
    found = Forwarder(
        lambda: ClusterView("a", members, 1, 2),
        lambda _: False,
        lambda _: False,
        QueryMetrics(),
        fresh=lambda _: True,
        forward_timeout_s=CONNECT_S,
        suspect_s=5.0,
    )
    await found.start()
    try:
        yield found
    finally:
        await found.close()


READ = ReadRequest("/users/alice/items", [("wait_ms", "5000")], [("Host", "x")], forwarded=False)


async def relayed(answer: ForwardedAnswer) -> bytes:
    assert answer.stream is not None
    return b"".join([chunk async for chunk in answer.stream()])


def test_a_read_is_forwarded_once_with_the_wait_left_and_answered_as_it_came() -> None:
    seen: list[web.Request] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(body=b'{"ok":1}', status=200, headers={"ETag": '"0.1.x"'})

    async def scenario() -> ForwardedAnswer | None:
        async with instance(answer) as url, forwarder(copy("b", url, 3)) as forwarding:
            return await forwarding.route(lambda: READ, 0, None, 2.0)

    found = asyncio.run(scenario())
    assert found is not None
    assert (found.status, found.body) == (200, b'{"ok":1}')
    assert {name.lower(): value for name, value in found.headers}["etag"] == '"0.1.x"'
    (request,) = seen
    assert request.headers[FORWARDED_HEADER] == "a"
    assert 0 < int(request.query["wait_ms"]) <= 2000
    assert request.host != "x"  # hop-by-hop headers are the proxy's own


def test_a_stream_is_relayed_across_a_pause_longer_than_any_timeout_of_the_forwarder() -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await answer.prepare(request)
        await answer.write(b"event: snapshot\n\n")
        await asyncio.sleep(CONNECT_S * 5)
        await answer.write(b"event: delta\n\n")
        await answer.write_eof()
        return answer

    async def scenario() -> bytes:
        async with instance(stream) as url, forwarder(copy("b", url, 3)) as forwarding:
            found = await forwarding.route(lambda: READ, 0, None, 2.0, stream=True)
            assert found is not None
            assert found.status == 200
            return await relayed(found)

    assert asyncio.run(scenario()) == b"event: snapshot\n\nevent: delta\n\n"


@pytest.mark.parametrize("stream", [False, True])
def test_a_copy_that_says_it_no_longer_holds_the_partition_is_asked_no_more(stream: bool) -> None:
    asked: list[str] = []

    async def not_held(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(status=503, headers={NOT_HELD_HEADER: "1", "Retry-After": "1"})

    async def scenario() -> None:
        async with instance(not_held) as url, forwarder(copy("b", url, 3)) as forwarding:
            await forwarding.route(lambda: READ, 0, None, 0.3, stream=stream)

    with pytest.raises(NoCopyAvailable) as refused:
        asyncio.run(scenario())
    assert asked == [READ.path]
    assert "partition 0" in refused.value.reason


def test_an_unreachable_copy_is_a_suspect_and_the_read_goes_to_another() -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=b"from c")

    async def scenario() -> ForwardedAnswer | None:
        # b has applied the token and is preferred, but cannot be reached.
        b = copy("b", closed_port_url(), 9)
        async with instance(answer) as url, forwarder(b, copy("c", url, 1)) as forwarding:
            return await forwarding.route(lambda: READ, 0, ConsistencyToken(0, 5), 2.0)

    found = asyncio.run(scenario())
    assert found is not None
    assert found.body == b"from c"


def test_a_stream_to_a_copy_that_never_answers_gives_up_within_the_wait() -> None:
    async def scenario() -> float:
        done = asyncio.Event()

        async def silent(request: web.Request) -> web.StreamResponse:
            await done.wait()  # accepts the connection, never starts the answer
            return web.Response()

        async with instance(silent) as url, forwarder(copy("b", url, 3)) as forwarding:
            started = asyncio.get_running_loop().time()
            try:
                with pytest.raises(NoCopyAvailable):
                    await forwarding.route(lambda: READ, 0, None, 0.5, stream=True)
                return asyncio.get_running_loop().time() - started
            finally:
                done.set()

    # Bounded by the wait (0.5 s) and one connect timeout, not by the silent copy; the margin
    # is for a loaded machine.
    assert asyncio.run(scenario()) < 5
