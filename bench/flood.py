"""A loop that stays responsive under floods (issue 18): 5,000 read-your-writes waiters and 500
streams opened against one server while one other user's items are read every 10 ms on the
same API port; the reader's latency against the same flood on a bare uvicorn app (bench.limits
`flood`: waiters sleep their wait, streams stay open, a plain read answers a constant body).

The query instance runs with its default caps (1,000 waiters, 1,000 streams at most), so most of
the flood is refused at once; the bare app has no caps and holds all of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from bench.harness import percentiles_ms
from query_service.view.partitioning import partition_for

WAITERS: Final = 5_000
STREAMS: Final = 500
WAIT_MS: Final = 4_000
# The crowd arrives in waves (a single burst past the kernel's accept queue has its SYNs
# retried after 1-3-7 s, a wait of the kernel's, not the server's).
WAVE: Final = 500
WAVE_GAP_S: Final = 0.05
PROBE_EVERY_S: Final = 0.01
# A token far ahead of any view: each kept waiter waits its whole wait_ms.
AHEAD_OFFSET: Final = 999_999_999


class _Connection:
    """One request on a connection of its own, over bare asyncio streams (thousands at once cost
    the client next to nothing)."""

    def __init__(self, host: str, port: int, target: str) -> None:
        self._address = (host, port)
        self._request = (
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        ).encode()
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> tuple[int, asyncio.StreamReader]:
        reader, self.writer = await asyncio.open_connection(*self._address)
        self.writer.write(self._request)
        status = int((await reader.readline()).split()[1])
        return status, reader

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _waiter(host: str, port: int, user: str, partitions: int) -> int:
    token = f"v1:{partition_for(user, partitions)}:{AHEAD_OFFSET}"
    connection = _Connection(
        host, port, f"/users/{user}/items?consistency_token={token}&wait_ms={WAIT_MS}"
    )
    try:
        status, reader = await connection.open()
        await reader.read()
        return status
    finally:
        connection.close()


async def _stream(host: str, port: int, user: str, release: asyncio.Event) -> int:
    connection = _Connection(host, port, f"/users/{user}/items/stream")
    try:
        status, _ = await connection.open()
        await release.wait()
        return status
    finally:
        connection.close()


async def _probe(host: str, port: int, user: str, stop: asyncio.Event) -> list[float]:
    """GET the user's items every PROBE_EVERY_S on one kept-alive connection, each timed."""
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET /users/{user}/items HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    seconds: list[float] = []
    try:
        while not stop.is_set():
            started = time.perf_counter()
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"the probe's read answered {status}")
            seconds.append(time.perf_counter() - started)
            await asyncio.sleep(PROBE_EVERY_S)
    finally:
        writer.close()
    return seconds


async def flood(
    url: str,
    users: Sequence[str],
    probe_user: str,
    partitions: int,
    waiters: int = WAITERS,
    streams: int = STREAMS,
) -> dict[str, Any]:
    """The flood against `url` (the waiters and streams spread over `users`, each stream a user
    of its own), with the probe reading `probe_user`'s items throughout."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stop, release = asyncio.Event(), asyncio.Event()
    probe = asyncio.create_task(_probe(host, port, probe_user, stop))
    await asyncio.sleep(0.5)  # the probe's quiet figures first
    opened = [
        asyncio.create_task(_stream(host, port, users[n % len(users)], release))
        for n in range(streams)
    ]
    waiting = []
    for n in range(waiters):
        if n and n % WAVE == 0:
            await asyncio.sleep(WAVE_GAP_S)
        waiting.append(asyncio.create_task(_waiter(host, port, users[n % len(users)], partitions)))
    waited = await asyncio.gather(*waiting)
    release.set()
    streamed = await asyncio.gather(*opened)
    stop.set()
    probed = await probe
    return {
        "probe": percentiles_ms(probed),
        "waiters": _counted(waited),
        "streams": _counted(streamed),
    }


def _counted(statuses: Sequence[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts
