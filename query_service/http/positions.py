"""How far the view has applied each partition, seen from the event loop.

The runner thread hands each durable batch to `advance` through `loop.call_soon_threadsafe`;
`advance` wakes the read-your-writes waiters it satisfies (a heap of futures per partition) and
pushes each changed user's new records to their SSE subscribers' bounded queues. No polling, no
thread per waiter.

Both are capped (waiters in total; streams in total and per user): past a cap the request is
refused at once rather than queued. A waiter that times out is only marked as gone and dropped
when it reaches the top of its heap (or when the gone outnumber the live), so leaving costs O(1)
amortised however many wait.

Threads: everything here runs on the event loop, except that the ops listener's /health/ready
reads `applied_offset(s)`: the applied offsets are a dict the loop swaps whole, never changes
in place.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from query_service.exceptions import NotYetConsistent, TooBusy, TooManyStreams
from query_service.ports import NO_ORIGINS, Origins
from query_service.settings import QuerySettings
from query_service.view.projection import Changes, Line, LineId, Summary

NOTHING_APPLIED = -1


@dataclass
class ViewChange:
    """A user's records as a batch left them, and the partition's offset after that batch."""

    applied_offset: int
    lines: dict[LineId, Line] = field(default_factory=dict)
    summaries: dict[str, Summary] = field(default_factory=dict)
    # The delta event's data, encoded by the first stream that sends it (event loop only).
    encoded: str | None = field(default=None, compare=False)
    # When the batch's oldest event of the partition was produced (ms), if known; the trace
    # context of each of the user's orders in it that was traced.
    produced_ms: int | None = field(default=None, compare=False)
    traces: Sequence[Mapping[str, str]] = field(default=(), compare=False)
    # When it was handed to the streams (ns since the epoch), for the delta's span.
    queued_ns: int = field(default=0, compare=False)


@dataclass(eq=False)
class Subscription:
    user_id: str
    partition: int
    changes: asyncio.Queue[ViewChange] = field(repr=False)
    # Set when the queue overflowed and changes were dropped: the reader must start afresh.
    overflowed: bool = False


@dataclass(order=True, slots=True)
class _Waiter:
    offset: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)
    gone: bool = field(default=False, compare=False)


def _default(setting: str) -> int:
    value: int = QuerySettings.model_fields[setting].default
    return value


@dataclass(frozen=True)
class Caps:
    """How many may wait or stream at once (defaults: the settings' own)."""

    waiters: int = _default("query_max_waiters")
    streams: int = _default("query_max_streams")
    streams_per_user: int = _default("query_max_streams_per_user")

    @classmethod
    def of(cls, settings: QuerySettings) -> Caps:
        return cls(
            settings.query_max_waiters,
            settings.query_max_streams,
            settings.query_max_streams_per_user,
        )


# A heap is swept of gone waiters only once it holds at least this many.
_SWEEP_AT = 64


class Positions:
    def __init__(
        self, applied: Mapping[int, int], queue_size: int = 64, caps: Caps | None = None
    ) -> None:
        # Swapped whole by the loop (advance, taken, released); read by the ops listener too.
        self._applied: Mapping[int, int] = dict(applied)
        self._waiters: dict[int, list[_Waiter]] = {}
        self._gone: dict[int, int] = {}
        self._waiting = 0
        self._seq = itertools.count()
        self._subscribers: dict[str, set[Subscription]] = {}
        self._subscribed = 0
        self._queue_size = queue_size
        self._caps = caps if caps is not None else Caps()

    def applied_offset(self, partition: int) -> int:
        return self._applied.get(partition, NOTHING_APPLIED)

    def applied_offsets(self) -> dict[int, int]:
        return dict(self._applied)

    @property
    def subscriber_count(self) -> int:
        return self._subscribed

    @property
    def waiter_count(self) -> int:
        return self._waiting

    def advance(
        self, offsets: Mapping[int, int], changes: Changes, origins: Origins = NO_ORIGINS
    ) -> None:
        """Called on the loop once a batch is durable: `offsets` are its partitions' new ends."""
        for partition, offset in offsets.items():
            if offset <= self.applied_offset(partition):
                continue
            self._applied = {**self._applied, partition: offset}
            heap = self._waiters.get(partition)
            while heap and heap[0].offset <= offset:
                waiter = heapq.heappop(heap)
                if waiter.gone:
                    self._gone[partition] -= 1
                    continue
                self._waiting -= 1
                waiter.gone = True
                if not waiter.future.done():
                    waiter.future.set_result(None)
            if heap is not None and not heap:
                del self._waiters[partition]
                self._gone.pop(partition, None)
        if self._subscribers:
            self._publish(changes, origins)

    def taken(self, partition: int, applied: int) -> None:
        """The instance took the partition up, its copy at `applied` (-1: nothing yet)."""
        self._forget_position(partition)
        if applied > NOTHING_APPLIED:
            self.advance({partition: applied}, Changes())

    def released(self, partition: int) -> None:
        """The instance let the partition go: its position means nothing any more."""
        self._forget_position(partition)

    def _forget_position(self, partition: int) -> None:
        if partition in self._applied:
            self._applied = {p: o for p, o in self._applied.items() if p != partition}

    async def wait_for(self, partition: int, offset: int, timeout_s: float) -> None:
        """Return once `offset` of `partition` is applied; NotYetConsistent after `timeout_s`."""
        if self.applied_offset(partition) >= offset:
            return
        if self._waiting >= self._caps.waiters:
            raise TooBusy("read-your-writes waiters", self._caps.waiters)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(offset, next(self._seq), future)
        heapq.heappush(self._waiters.setdefault(partition, []), waiter)
        self._waiting += 1
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise NotYetConsistent(partition, offset, self.applied_offset(partition)) from None
        finally:
            if not waiter.gone:
                self._forget(partition, waiter)

    def _forget(self, partition: int, waiter: _Waiter) -> None:
        waiter.gone = True
        self._waiting -= 1
        gone = self._gone[partition] = self._gone.get(partition, 0) + 1
        heap = self._waiters[partition]
        if gone >= _SWEEP_AT and gone * 2 > len(heap):
            # Each sweep removes at least half the heap, all of it gone waiters: O(1) amortised.
            live = [w for w in heap if not w.gone]
            heapq.heapify(live)
            self._gone[partition] = 0
            if live:
                self._waiters[partition] = live
            else:
                del self._waiters[partition]
        elif gone == len(heap):
            del self._waiters[partition]
            self._gone[partition] = 0

    def subscribe(self, user_id: str, partition: int) -> Subscription:
        subs = self._subscribers.get(user_id, set())
        if len(subs) >= self._caps.streams_per_user:
            raise TooManyStreams(user_id, self._caps.streams_per_user)
        if self._subscribed >= self._caps.streams:
            raise TooBusy("item streams", self._caps.streams)
        subscription = Subscription(user_id, partition, asyncio.Queue(self._queue_size))
        self._subscribers.setdefault(user_id, subs).add(subscription)
        self._subscribed += 1
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subs = self._subscribers.get(subscription.user_id)
        if subs is None or subscription not in subs:
            return
        subs.discard(subscription)
        self._subscribed -= 1
        if not subs:
            del self._subscribers[subscription.user_id]

    def _publish(self, changes: Changes, origins: Origins) -> None:
        subscribers = self._subscribers
        found: dict[str, ViewChange] = {}
        for line_id, line in changes.lines.items():
            if line_id.user_id in subscribers:
                change = found.get(line_id.user_id)
                if change is None:
                    change = found[line_id.user_id] = ViewChange(NOTHING_APPLIED)
                change.lines[line_id] = line
        for summary_id, summary in changes.summaries.items():
            if summary_id.user_id in found:
                found[summary_id.user_id].summaries[summary_id.group] = summary
        for user_id, change in found.items():
            subs = subscribers[user_id]
            # A user's streams share their partition, and so one change (encoded once).
            partition = next(iter(subs)).partition
            shared = ViewChange(
                self.applied_offset(partition),
                change.lines,
                change.summaries,
                produced_ms=origins.produced_ms.get(partition),
                traces=origins.traces.get(user_id, ()),
            )
            if shared.traces:
                shared.queued_ns = time.time_ns()
            for sub in subs:
                if sub.changes.full():
                    # A reader this far behind gets a fresh snapshot instead of every change.
                    sub.overflowed = True
                    while not sub.changes.empty():
                        sub.changes.get_nowait()
                sub.changes.put_nowait(shared)
