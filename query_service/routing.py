"""Any instance answers any user: a read is served here when this copy of the user's partition can
answer it, else forwarded once to an instance whose copy can, else refused with a 503 after a
bounded wait. The decision itself is cluster.route (pure); this module waits and forwards.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Final

import httpx
from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from query_service.cluster import ClusterView, Forward, Local, Member, route
from query_service.exceptions import NoCopyAvailable, PartitionNotHeld
from query_service.metrics import QueryMetrics
from shared.tokens import ConsistencyToken

log = logging.getLogger(__name__)

FORWARDED_HEADER: Final = "X-Query-Forwarded-By"
# On a 503 to a forwarded read: this instance does not hold the partition (any more).
NOT_HELD_HEADER: Final = "X-Query-Not-Held"
SERVED_BY_HEADER: Final = "X-Served-By"
POLL_S: Final = 0.02
# Hop-by-hop and length headers are the proxy's own business, never passed through.
_NOT_PASSED: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"}
)


class Routing:
    def __init__(
        self,
        view: Callable[[], ClusterView],
        holds: Callable[[int], bool],
        ready: Callable[[int], bool],
        client: httpx.AsyncClient,
        metrics: QueryMetrics,
        *,
        forward_timeout_s: float,
        suspect_s: float,
    ) -> None:
        self._view = view
        self._holds = holds
        self._ready = ready
        self._client = client
        self._metrics = metrics
        self._forward_timeout_s = forward_timeout_s
        self._suspect_s = suspect_s
        # Members a forward could not reach, until their heartbeats are trusted again; and
        # copies a member said it no longer holds, until its next heartbeats say so too.
        self._suspects: dict[str, float] = {}
        self._moved: dict[tuple[str, int], float] = {}

    def _live_view(self) -> ClusterView:
        view = self._view()
        now = time.monotonic()
        suspects = {m for m, until in self._suspects.items() if until > now}
        moved = {key for key, until in self._moved.items() if until > now}
        if not suspects and not moved:
            return view
        members = {
            k: m if not moved else _without(m, {p for (who, p) in moved if who == k})
            for k, m in view.members.items()
            if k not in suspects or k == view.me
        }
        return ClusterView(view.me, members, view.partitions, view.replicas)

    async def route(
        self,
        request: Request,
        partition: int,
        token: ConsistencyToken | None,
        wait_s: float,
        *,
        stream: bool = False,
    ) -> Response | None:
        """None: serve here (the token's wait is the caller's). Else the forwarded answer.

        Raises NoCopyAvailable when no copy could answer within `wait_s`.
        """
        if self._holds(partition) and self._ready(partition):
            # The common case, decided without building the cluster's view.
            return None
        forwarded = FORWARDED_HEADER in request.headers
        if forwarded and not self._holds(partition):
            # The sender's view of who holds what is older than ours: tell it at once, so that
            # it asks another copy (a forwarded read is never forwarded again).
            raise PartitionNotHeld(partition)
        deadline = time.monotonic() + wait_s
        offset = None if token is None else token.offset
        while True:
            decision = route(
                self._live_view(),
                partition,
                offset,
                local_ready=self._ready(partition),
                local_holds=self._holds(partition),
                forwarded=forwarded,
            )
            remaining = deadline - time.monotonic()
            if isinstance(decision, Local):
                # A copy still catching up answers a token it has applied, never a read
                # without one: that would be an incomplete view.
                if token is not None or self._ready(partition):
                    return None
            elif isinstance(decision, Forward):
                answer = await self._forward(request, decision.member, max(remaining, 0), stream)
                if answer is None:
                    continue  # that member is a suspect now: decide again without it
                if answer.status_code == 503 and NOT_HELD_HEADER.lower() in answer.headers:
                    key = (decision.member.instance_id, partition)
                    self._moved[key] = time.monotonic() + self._suspect_s
                    continue  # it let the partition go: decide again without that copy
                return answer
            if remaining <= 0:
                view = self._live_view()
                log.warning(
                    "no copy of partition %d answered %s within the wait; copies heard of: %s",
                    partition,
                    "a forwarded read" if forwarded else "a read",
                    {m.instance_id: m.partitions.get(partition) for m in view.members.values()},
                )
                raise NoCopyAvailable(partition)
            await asyncio.sleep(min(POLL_S, remaining))

    async def _forward(
        self, request: Request, member: Member, wait_s: float, stream: bool
    ) -> Response | None:
        params = dict(request.query_params)
        if "wait_ms" in params or not stream:
            params["wait_ms"] = str(int(wait_s * 1000))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_PASSED}
        headers[FORWARDED_HEADER] = self._view().me
        url = member.url + request.url.path
        started = time.perf_counter()
        try:
            if stream:
                return await self._forward_stream(url, params, headers, member)
            upstream = await self._client.get(
                url, params=params, headers=headers, timeout=wait_s + self._forward_timeout_s
            )
        except httpx.HTTPError as exc:
            log.warning("forward to %s (%s) failed: %r", member.instance_id, member.url, exc)
            self._suspects[member.instance_id] = time.monotonic() + self._suspect_s
            self._metrics.forwarded.labels("unreachable").inc()
            return None
        self._metrics.forward_seconds.observe(time.perf_counter() - started)
        self._metrics.forwarded.labels(str(upstream.status_code)).inc()
        return Response(
            upstream.content,
            upstream.status_code,
            headers={k: v for k, v in upstream.headers.items() if k.lower() not in _NOT_PASSED},
        )

    async def _forward_stream(
        self, url: str, params: dict[str, str], headers: dict[str, str], member: Member
    ) -> Response:
        upstream_request = self._client.build_request("GET", url, params=params, headers=headers)
        upstream = await self._client.send(upstream_request, stream=True)
        self._metrics.forwarded.labels(str(upstream.status_code)).inc()

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            except httpx.HTTPError as exc:
                log.info("forwarded stream from %s ended: %r", member.instance_id, exc)
            finally:
                await upstream.aclose()

        return StreamingResponse(
            relay(),
            upstream.status_code,
            headers={k: v for k, v in upstream.headers.items() if k.lower() not in _NOT_PASSED},
        )


def _without(member: Member, partitions: set[int]) -> Member:
    if not partitions:
        return member
    kept = {p: state for p, state in member.partitions.items() if p not in partitions}
    return replace(member, partitions=kept)
