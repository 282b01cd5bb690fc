"""Any instance answers any user: a read is served here when this copy of the user's partition can
answer it, else forwarded once to an instance whose copy can, else refused after a bounded wait.

The decision is routing.route (pure); this adapter, on the event loop, only waits, forwards and
maps. Forwards go over one long-lived aiohttp session (pooled keep-alive connections): the
answer's bytes and headers are passed through unparsed, and a stream is relayed with no read
timeout between its events (the origin pings every 15 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp

from query_service.cluster.model import ClusterView, Member
from query_service.cluster.routing import Forward, Local, NotHeld, reachable, route, serves_here
from query_service.exceptions import NoCopyAvailable, PartitionNotHeld
from query_service.metrics import QueryMetrics
from shared.tokens import ConsistencyToken

log = logging.getLogger(__name__)

FORWARDED_HEADER: Final = "X-Query-Forwarded-By"
# On a 503 to a forwarded read: this instance does not hold the partition (any more).
NOT_HELD_HEADER: Final = "X-Query-Not-Held"
# Names the instance that answered (set by the http edge's ServedBy middleware).
SERVED_BY_HEADER: Final = "X-Served-By"
POLL_S: Final = 0.02
# What a relayed stream ends with when this instance stops (as the origin ends a moved stream).
MOVED_EVENT: Final = b"event: moved\r\ndata: {}\r\nretry: 500\r\n\r\n"
MAX_CONNECTIONS: Final = 64
# Hop-by-hop and length headers are the proxy's own business, never passed through.
_NOT_PASSED: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"}
)

Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """What of an incoming read a forward repeats: its path, query and headers as received."""

    path: str
    query: Sequence[tuple[str, str]]
    headers: Sequence[tuple[str, str]]
    forwarded: bool


@dataclass(frozen=True, slots=True)
class ForwardedAnswer:
    """Another instance's answer, as it sent it: `body` for a read, `stream` for a stream."""

    status: int
    headers: Headers
    body: bytes = b""
    stream: Callable[[], AsyncIterator[bytes]] | None = None


class Forwarder:
    def __init__(
        self,
        view: Callable[[], ClusterView],
        holds: Callable[[int], bool],
        ready: Callable[[int], bool],
        metrics: QueryMetrics,
        *,
        fresh: Callable[[int], bool],
        forward_timeout_s: float,
        suspect_s: float,
    ) -> None:
        self._view = view
        self._holds = holds
        self._ready = ready
        self._fresh = fresh
        self._metrics = metrics
        self._forward_timeout_s = forward_timeout_s
        self._suspect_s = suspect_s
        self._session: aiohttp.ClientSession | None = None
        # Event loop only. Members a forward could not reach, until their heartbeats are trusted
        # again; and copies a member said it no longer holds, until its heartbeats say so too.
        self._suspects: dict[str, float] = {}
        self._moved: dict[tuple[str, int], float] = {}
        # Set once, when the process is told to stop: relayed streams end.
        self._draining = asyncio.Event()

    def drain(self) -> None:
        """End every relayed stream with a `moved` event (its client reconnects elsewhere)."""
        self._draining.set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _live_view(self) -> ClusterView:
        now = time.monotonic()
        suspects = {m for m, until in self._suspects.items() if until > now}
        moved = {key for key, until in self._moved.items() if until > now}
        return reachable(self._view(), suspects, moved)

    async def route(
        self,
        request: Callable[[], ReadRequest],
        partition: int,
        token: ConsistencyToken | None,
        wait_s: float,
        *,
        stream: bool = False,
    ) -> ForwardedAnswer | None:
        """None: serve here (the token's wait is the caller's). Else the forwarded answer of
        the read `request` gives (asked only when the read is not served here).

        Raises PartitionNotHeld for a forwarded read of a partition not held here, and
        NoCopyAvailable when no copy could answer within `wait_s`.
        """
        if serves_here(
            local_holds=self._holds(partition),
            local_ready=self._ready(partition),
            local_fresh=self._fresh(partition),
        ):
            # The common case, decided without building the cluster's view.
            return None
        read = request()
        deadline = time.monotonic() + wait_s
        offset = None if token is None else token.offset
        while True:
            view = self._live_view()
            decision = route(
                view,
                partition,
                offset,
                local_ready=self._ready(partition),
                local_holds=self._holds(partition),
                forwarded=read.forwarded,
                local_fresh=self._fresh(partition),
            )
            remaining = deadline - time.monotonic()
            if isinstance(decision, Local):
                return None
            if isinstance(decision, NotHeld):
                raise PartitionNotHeld(partition)
            if isinstance(decision, Forward):
                member = decision.member
                answer = await self._forward(read, view.me, member, max(remaining, 0), stream)
                if answer is None:
                    continue  # that member is a suspect now: decide again without it
                if answer.status == 503 and any(
                    name.lower() == NOT_HELD_HEADER.lower() for name, _ in answer.headers
                ):
                    self._moved[(member.instance_id, partition)] = (
                        time.monotonic() + self._suspect_s
                    )
                    continue  # it let the partition go: decide again without that copy
                return answer
            if remaining <= 0:
                log.warning(
                    "no copy of partition %d answered %s within the wait (%s); copies heard of: %s",
                    partition,
                    "a forwarded read" if read.forwarded else "a read",
                    decision.reason,
                    {m.instance_id: m.partitions.get(partition) for m in view.members.values()},
                )
                raise NoCopyAvailable(partition, decision.reason)
            await asyncio.sleep(min(POLL_S, remaining))

    async def _forward(
        self, read: ReadRequest, me: str, member: Member, wait_s: float, stream: bool
    ) -> ForwardedAnswer | None:
        assert self._session is not None, "the forwarder is started in the lifespan"
        query = [(k, v) for k, v in read.query if k != "wait_ms"]
        if stream:
            query += [(k, v) for k, v in read.query if k == "wait_ms"]
        else:
            query.append(("wait_ms", str(int(wait_s * 1000))))
        headers = [(k, v) for k, v in read.headers if k.lower() not in _NOT_PASSED]
        headers.append((FORWARDED_HEADER, me))
        url = member.url + read.path
        connect = self._forward_timeout_s
        # A read is bounded whole; a stream only while connecting, and never between events
        # (an idle stream sees a ping every 15 s).
        timeout = (
            aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=None)
            if stream
            else aiohttp.ClientTimeout(total=wait_s + connect)
        )
        started = time.perf_counter()
        try:
            # The answer must start within the wait, a stream's too: a copy that accepts the
            # connection and never answers is a suspect like one that refuses it.
            async with asyncio.timeout(wait_s + connect):
                upstream = await self._session.get(
                    url, params=query, headers=headers, timeout=timeout, allow_redirects=False
                )
            if not stream or upstream.status != 200:
                try:
                    body = await upstream.read()
                finally:
                    upstream.release()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("forward to %s (%s) failed: %r", member.instance_id, member.url, exc)
            self._suspects[member.instance_id] = time.monotonic() + self._suspect_s
            self._metrics.forwarded.labels("unreachable").inc()
            return None
        self._metrics.forward_seconds.observe(time.perf_counter() - started)
        self._metrics.forwarded.labels(str(upstream.status)).inc()
        passed = [(k, v) for k, v in upstream.headers.items() if k.lower() not in _NOT_PASSED]
        if stream and upstream.status == 200:
            return ForwardedAnswer(
                upstream.status, passed, stream=_relay(upstream, member, self._draining)
            )
        return ForwardedAnswer(upstream.status, passed, body)


def _relay(
    upstream: aiohttp.ClientResponse, member: Member, draining: asyncio.Event
) -> Callable[[], AsyncIterator[bytes]]:
    async def relay() -> AsyncIterator[bytes]:
        chunks = upstream.content.iter_any().__aiter__()
        drained = asyncio.ensure_future(draining.wait())
        try:
            while True:
                chunk = asyncio.ensure_future(anext(chunks))
                await asyncio.wait((chunk, drained), return_when=asyncio.FIRST_COMPLETED)
                if not chunk.done():
                    chunk.cancel()
                    yield MOVED_EVENT  # this instance is stopping: reconnect elsewhere
                    return
                yield chunk.result()
        except StopAsyncIteration:
            return
        except aiohttp.ClientError as exc:
            log.info("forwarded stream from %s ended: %r", member.instance_id, exc)
        finally:
            drained.cancel()
            upstream.close()

    return relay
