"""Live pages for thousands (issue 18): N items streams open on one query instance, one per user,
while orders for those users are posted at a steady rate; per order, the time from the POST's
201 to the `delta` carrying it on its user's stream. With the instance's memory and CPU, and the
client's own CPU: it shares the machine with what it measures.

    .venv/bin/python -m bench.streams [--streams 5000] [--rate 200] [--seconds 10]
                                      [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import resource
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import uvloop

from bench.harness import percentiles_ms, start_broker, start_process
from devtools.environment import service_env
from devtools.processes import ServiceProcess

# The figure: this many streams open while orders come at this rate.
STREAMS: Final = 5_000
RATE: Final = 200
# Streams opening at once: each waits for its snapshot, and uvicorn's accept backlog is 2048.
OPENING_AT_ONCE: Final = 64
WARMUP_ORDERS: Final = 20
# How long after the last POST every delta may take before the run counts it missing.
ARRIVAL_TIMEOUT_S: Final = 30.0
READY_TIMEOUT_S: Final = 120.0
# Each order's one line has a sku of its own, so that its delta names it and no other order.
SKU_PREFIX: Final = "LIVE-"
_SKU: Final = re.compile(rb'"sku":"(' + SKU_PREFIX.encode() + rb'\d+)"')


def stream_caps(streams: int) -> dict[str, str]:
    """The query instance's caps, raised for `streams` streams: each also holds one of uvicorn's
    connections, beside the requests of the run itself."""
    return {
        "QUERY_MAX_STREAMS": str(streams + 100),
        "QUERY_LIMIT_CONCURRENCY": str(streams + 1_000),
    }


def raise_open_files(needed: int) -> None:
    """Lift this process's soft limit on open files towards `needed`, as far as the hard limit
    allows (children started afterwards inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def memory_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now (VmRSS) and at its peak (VmHWM), in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": found["VmRSS"], "peak_rss_mb": found["VmHWM"]}


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    id: str
    data: bytes
    # perf_counter() when the bytes that completed it were read.
    at: float


class SseStream:
    """One `GET` of a text/event-stream over a bare asyncio connection: thousands cost the client
    next to nothing, where a general HTTP client's per-connection work would make the client
    the slowest part of the measurement (tests/e2e/test_query_limits.py).

    `receive_buffer` shrinks the socket's receive buffer and the reader's own, for a client that
    is meant to fall behind: one that stops reading then stops the server's sends within a few
    kilobytes."""

    def __init__(
        self,
        url: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        receive_buffer: int | None = None,
    ) -> None:
        parts = urlsplit(url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._request = (
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n"
            f"{extra}\r\n"
        ).encode()
        self._receive_buffer = receive_buffer
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._chunked = False
        self.status = 0

    async def open(self) -> int:
        """Connect, send the request and read the answer's head; its status."""
        if self._receive_buffer is None:
            self._reader, self._writer = await asyncio.open_connection(*self._address)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, self._address)
            self._reader, self._writer = await asyncio.open_connection(
                sock=sock, limit=self._receive_buffer
            )
        self._writer.write(self._request)
        self.status = int((await self._reader.readline()).split()[1])
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"transfer-encoding":
                self._chunked = b"chunked" in value.lower()
        return self.status

    def socket(self) -> socket.socket:
        assert self._writer is not None
        sock: socket.socket = self._writer.get_extra_info("socket")
        return sock

    async def body(self) -> bytes:
        """The rest of the answer, for one that is not a stream (an error's JSON)."""
        return b"".join([chunk async for chunk, _ in self._chunks()])

    async def events(self) -> AsyncIterator[SseEvent]:
        """The stream's events in order (comments, such as pings, skipped) until it ends."""
        pending = b""
        async for chunk, at in self._chunks():
            pending = (pending + chunk).replace(b"\r\n", b"\n")
            *blocks, pending = pending.split(b"\n\n")
            for block in blocks:
                found = _parse(block, at)
                if found is not None:
                    yield found

    async def _chunks(self) -> AsyncIterator[tuple[bytes, float]]:
        reader = self._reader
        assert reader is not None
        while True:
            if self._chunked:
                size = await reader.readline()
                if not size or int(size.split(b";", 1)[0], 16) == 0:
                    return
                chunk = (await reader.readexactly(int(size.split(b";", 1)[0], 16) + 2))[:-2]
            else:
                chunk = await reader.read(65_536)
                if not chunk:
                    return
            yield chunk, time.perf_counter()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):  # already reset by the server
                await self._writer.wait_closed()


def _parse(block: bytes, at: float) -> SseEvent | None:
    event, event_id, data = "message", "", []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        value = value.removeprefix(b" ")
        if name == b"event":
            event = value.decode()
        elif name == b"id":
            event_id = value.decode()
        elif name == b"data":
            data.append(value)
    if not data and event == "message":
        return None
    return SseEvent(event, event_id, b"\n".join(data), at)


@dataclass
class _Order:
    sku: str
    user: str
    body: bytes
    # perf_counter() when the 201 came, and the offset its consistency token names.
    placed_at: float = 0.0
    offset: int = -1


@dataclass
class _Arrival:
    user: str
    at: float
    offset: int


@dataclass
class _Streams:
    """What every stream has received, keyed by the sku of the order that caused it."""

    arrivals: dict[str, _Arrival] = field(default_factory=dict)
    # A sku seen on a second stream, or twice on one.
    repeated: int = 0
    ended: list[str] = field(default_factory=list)

    async def follow(self, stream: SseStream, user: str, ready: asyncio.Future[None]) -> None:
        try:
            async for event in stream.events():
                if event.event == "snapshot":
                    if not ready.done():
                        ready.set_result(None)
                elif event.event == "delta":
                    self.delta(user, event)
        except (OSError, asyncio.IncompleteReadError):
            pass  # counted as ended, below
        self.ended.append(user)
        if not ready.done():
            ready.set_exception(RuntimeError(f"{user}'s stream ended before its snapshot"))

    def delta(self, user: str, event: SseEvent) -> None:
        offset = int(event.id.rsplit(":", 1)[1])
        for sku in _SKU.findall(event.data):
            name = sku.decode()
            if name in self.arrivals:
                self.repeated += 1
            else:
                self.arrivals[name] = _Arrival(user, event.at, offset)


def _order(sku: str, user: str) -> _Order:
    item = {"sku": sku, "name": "Live page", "unit_price": "7.50", "quantity": 1}
    return _Order(sku, user, json.dumps({"user_id": user, "items": [item]}).encode())


async def live_streams(
    command_url: str,
    query: ServiceProcess,
    users: int,
    rate: int,
    seconds: float,
    *,
    prefix: str = "live",
) -> dict[str, Any]:
    """`users` streams on `query` (users `<prefix>-0..`), each once it has its snapshot; then
    orders for them, open loop at `rate`/s for `seconds`, each for a user with the fewest so far;
    returns the POST's 201 to delta latencies and the instance's memory."""
    assert query.popen is not None
    pid = query.popen.pid
    names = [f"{prefix}-{n}" for n in range(users)]
    memory_before = memory_mb(pid)
    received = _Streams()
    streams = [SseStream(query.url, f"/users/{name}/items/stream") for name in names]
    loop = asyncio.get_running_loop()
    ready = [loop.create_future() for _ in names]
    following: list[asyncio.Task[None]] = []
    opening = asyncio.Semaphore(OPENING_AT_ONCE)

    async def open_one(n: int) -> None:
        async with opening:
            status = await streams[n].open()
            if status != 200:
                body = await streams[n].body()
                raise RuntimeError(f"{names[n]}'s stream answered {status}: {body[:300]!r}")
            following.append(asyncio.create_task(received.follow(streams[n], names[n], ready[n])))
            await ready[n]

    server_cpu, started = query.cpu_seconds(), time.perf_counter()
    try:
        await asyncio.gather(*(open_one(n) for n in range(users)))
        open_s = time.perf_counter() - started
        open_cpu = query.cpu_seconds() - server_cpu
        memory_open = memory_mb(pid)
        # Each order for a user with the fewest so far: with fewer orders than users, one each.
        order_users = random.Random(18).sample(names, users)
        count = max(1, round(rate * seconds))
        orders = [
            _order(f"{SKU_PREFIX}{i}", order_users[i % users]) for i in range(count + WARMUP_ORDERS)
        ]
        warmup, measured = orders[count:], orders[:count]
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector) as http:
            await _place(http, command_url, warmup, rate)
            await _arrived(received, warmup, ARRIVAL_TIMEOUT_S)
            server_cpu, cpu = query.cpu_seconds(), time.process_time()
            started = time.perf_counter()
            placing_s = await _place(http, command_url, measured, rate)
            await _arrived(received, measured, ARRIVAL_TIMEOUT_S)
            wall = time.perf_counter() - started
            cpu, server_cpu = time.process_time() - cpu, query.cpu_seconds() - server_cpu
        memory_end = memory_mb(pid)
        if received.ended:
            raise RuntimeError(f"{len(received.ended)} streams ended: {received.ended[:5]}")
    finally:
        for task in following:
            task.cancel()
        await asyncio.gather(*following, return_exceptions=True)
        await asyncio.gather(*(stream.close() for stream in streams))

    latencies, misdelivered, ahead = [], 0, 0
    for order in measured:
        arrival = received.arrivals[order.sku]
        misdelivered += arrival.user != order.user
        # The delta's id is the offset its batch left the partition at: never before the order.
        ahead += arrival.offset < order.offset
        latencies.append(arrival.at - order.placed_at)
    if misdelivered or ahead or received.repeated:
        raise RuntimeError(
            f"deltas wrong: {misdelivered} on another user's stream, {ahead} with an id before "
            f"their order's offset, {received.repeated} skus sent twice"
        )
    return {
        "streams": users,
        "rate": rate,
        "achieved_rate": round(count / placing_s, 1),
        "orders_posted": count,
        "deltas_received": sum(order.sku in received.arrivals for order in measured),
        # From each POST's 201 to its delta, both as the client read them.
        **percentiles_ms(latencies),
        "open_s": round(open_s, 2),
        "open_server_cpu_s": round(open_cpu, 2),
        "query_memory_before_streams": memory_before,
        "query_memory_streams_open": memory_open,
        "query_memory_end": memory_end,
        "rss_mb": memory_end["rss_mb"],
        "rss_per_stream_kb": round(
            1024 * (memory_open["rss_mb"] - memory_before["rss_mb"]) / users, 1
        ),
        "server_cpu": round(server_cpu / wall, 3),
        "client_cpu": round(cpu / wall, 3),
    }


async def _place(
    http: aiohttp.ClientSession, command_url: str, orders: list[_Order], rate: int
) -> float:
    """POST each order on its schedule, whether or not earlier ones were answered (open loop);
    the seconds it took."""
    failures: list[str] = []

    async def one(order: _Order) -> None:
        headers = {"Content-Type": "application/json"}
        async with http.post(f"{command_url}/orders", data=order.body, headers=headers) as placed:
            answer = await placed.read()
            order.placed_at = time.perf_counter()
            if placed.status != 201:
                failures.append(f"{placed.status} {answer[:300]!r}")
                return
            order.offset = int(placed.headers["X-Consistency-Token"].rsplit(":", 1)[1])

    start = time.perf_counter()
    tasks = []
    for i, order in enumerate(orders):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(order)))
    await asyncio.gather(*tasks)
    if failures:
        raise RuntimeError(f"POST /orders failed: {failures[:5]}")
    return time.perf_counter() - start


async def _arrived(received: _Streams, orders: list[_Order], timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while True:
        missing = [order.sku for order in orders if order.sku not in received.arrivals]
        if not missing:
            return
        if time.perf_counter() > deadline or received.ended:
            raise RuntimeError(
                f"{len(missing)} of {len(orders)} orders' deltas did not arrive within "
                f"{timeout_s}s (e.g. {missing[:5]}); streams ended: {received.ended[:5]}"
            )
        await asyncio.sleep(0.02)


def measure(
    stack: ExitStack,
    env: Mapping[str, str],
    logs: Path,
    streams: int,
    rate: int,
    seconds: float,
) -> dict[str, Any]:
    """A command service and one query instance (its caps raised for `streams`) on `env`'s topic,
    measured by `live_streams`; both stopped before it returns."""
    # The client's sockets, and the instance's (it inherits the limit), with room to spare.
    raise_open_files(2 * streams + 1_000)
    command = start_process(stack, "command_service", "command-streams", env, logs)
    query = start_process(
        stack, "query_service", "query-streams", {**env, **stream_caps(streams)}, logs
    )
    command.wait_http("/health/ready", READY_TIMEOUT_S)
    query.wait_http("/health/ready", READY_TIMEOUT_S)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        found = runner.run(live_streams(command.url, query, streams, rate, seconds))
    query.stop()
    command.stop()
    return found


def main() -> int:
    # Imported here: bench.run imports this module for its own run.
    from bench.run import UNLIMITED

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("librdkafka").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=STREAMS)
    parser.add_argument("--rate", type=int, default=RATE)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    args = parser.parse_args()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-streams-")))
        logs = workdir / "logs"
        logs.mkdir()
        bootstrap = start_broker(stack, workdir, args.bootstrap)
        env = {**service_env(bootstrap, workdir / "state"), **UNLIMITED}
        found = measure(stack, env, logs, args.streams, args.rate, args.seconds)
    print(json.dumps(found, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
