"""How far the view has applied each partition, seen from the event loop.

The runner thread hands each durable batch to `advance` through `loop.call_soon_threadsafe`;
`advance` wakes the read-your-writes waiters it satisfies (a heap of futures per partition) and
pushes each changed user's new records to their SSE subscribers' bounded queues. No polling, no
thread per waiter.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from query_service.exceptions import NotYetConsistent
from query_service.projection import Changes, Line, LineId, Summary

NOTHING_APPLIED = -1


@dataclass
class ViewChange:
    """A user's records as a batch left them, and the partition's offset after that batch."""

    applied_offset: int
    lines: dict[LineId, Line] = field(default_factory=dict)
    summaries: dict[str, Summary] = field(default_factory=dict)


@dataclass(eq=False)
class Subscription:
    user_id: str
    partition: int
    changes: asyncio.Queue[ViewChange] = field(repr=False)
    # Set when the queue overflowed and changes were dropped: the reader must start afresh.
    overflowed: bool = False


class _Waiter(NamedTuple):
    offset: int
    seq: int
    future: asyncio.Future[None]


class Positions:
    def __init__(self, applied: Mapping[int, int], queue_size: int = 64) -> None:
        self._applied = dict(applied)
        self._waiters: dict[int, list[_Waiter]] = {}
        self._seq = itertools.count()
        self._subscribers: dict[str, set[Subscription]] = {}
        self._queue_size = queue_size

    def applied_offset(self, partition: int) -> int:
        return self._applied.get(partition, NOTHING_APPLIED)

    def applied_offsets(self) -> dict[int, int]:
        return dict(self._applied)

    @property
    def subscriber_count(self) -> int:
        return sum(len(subs) for subs in self._subscribers.values())

    @property
    def waiter_count(self) -> int:
        return sum(len(heap) for heap in self._waiters.values())

    def advance(self, offsets: Mapping[int, int], changes: Changes) -> None:
        """Called on the loop once a batch is durable: `offsets` are its partitions' new ends."""
        for partition, offset in offsets.items():
            if offset <= self.applied_offset(partition):
                continue
            self._applied[partition] = offset
            heap = self._waiters.get(partition)
            while heap and heap[0].offset <= offset:
                waiter = heapq.heappop(heap)
                if not waiter.future.done():
                    waiter.future.set_result(None)
        if self._subscribers:
            self._publish(changes)

    def taken(self, partition: int, applied: int) -> None:
        """The instance took the partition up, its copy at `applied` (-1: nothing yet)."""
        self._applied.pop(partition, None)
        if applied > NOTHING_APPLIED:
            self.advance({partition: applied}, Changes())

    def released(self, partition: int) -> None:
        """The instance let the partition go: its position means nothing any more."""
        self._applied.pop(partition, None)

    async def wait_for(self, partition: int, offset: int, timeout_s: float) -> None:
        """Return once `offset` of `partition` is applied; NotYetConsistent after `timeout_s`."""
        if self.applied_offset(partition) >= offset:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(offset, next(self._seq), future)
        heap = self._waiters.setdefault(partition, [])
        heapq.heappush(heap, waiter)
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise NotYetConsistent(partition, offset, self.applied_offset(partition)) from None
        finally:
            if not future.done() or future.cancelled():
                self._forget(partition, waiter)

    def _forget(self, partition: int, waiter: _Waiter) -> None:
        heap = self._waiters.get(partition, [])
        if waiter in heap:
            heap.remove(waiter)
            heapq.heapify(heap)
        if not heap:
            self._waiters.pop(partition, None)

    def subscribe(self, user_id: str, partition: int) -> Subscription:
        subscription = Subscription(user_id, partition, asyncio.Queue(self._queue_size))
        self._subscribers.setdefault(user_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subs = self._subscribers.get(subscription.user_id)
        if subs is None:
            return
        subs.discard(subscription)
        if not subs:
            del self._subscribers[subscription.user_id]

    def _publish(self, changes: Changes) -> None:
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
            for sub in subscribers[user_id]:
                offset = self.applied_offset(sub.partition)
                if sub.changes.full():
                    # A reader this far behind gets a fresh snapshot instead of every change.
                    sub.overflowed = True
                    while not sub.changes.empty():
                        sub.changes.get_nowait()
                sub.changes.put_nowait(ViewChange(offset, change.lines, change.summaries))
