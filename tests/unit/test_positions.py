"""Read-your-writes waiters and SSE fan-out, on an event loop without Kafka."""

from __future__ import annotations

import asyncio

import pytest

from query_service.exceptions import NotYetConsistent, TooBusy, TooManyStreams
from query_service.http.positions import Caps, Positions
from query_service.view.projection import Changes, Line, LineId, Summary, SummaryId


def changes(*users: str, quantity: int = 1) -> Changes:
    found = Changes()
    for user in users:
        found.lines[LineId(user, "cheap", "TEA", 100)] = Line("Tea", quantity, quantity)
        found.summaries[SummaryId(user, "cheap")] = Summary(quantity, 100 * quantity, 1)
    return found


def test_waiters_wake_when_their_offset_is_applied() -> None:
    async def scenario() -> None:
        positions = Positions({0: 4})
        await positions.wait_for(0, 4, 0)  # already applied: no wait at all
        early = asyncio.create_task(positions.wait_for(0, 6, 5))
        late = asyncio.create_task(positions.wait_for(0, 9, 5))
        await asyncio.sleep(0)
        assert positions.waiter_count == 2
        positions.advance({0: 7}, Changes())
        await early
        assert not late.done()
        positions.advance({0: 9}, Changes())
        await late
        assert positions.waiter_count == 0

    asyncio.run(scenario())


def test_a_waiter_that_times_out_reports_the_position_and_leaves_nothing() -> None:
    async def scenario() -> None:
        positions = Positions({1: 3})
        with pytest.raises(NotYetConsistent) as info:
            await positions.wait_for(1, 1_000_000, 0.01)
        assert (info.value.partition, info.value.applied_offset) == (1, 3)
        assert positions.waiter_count == 0

    asyncio.run(scenario())


def test_changes_reach_only_their_user_and_unsubscribe_cleans_up() -> None:
    async def scenario() -> None:
        positions = Positions({}, queue_size=2)
        sub = positions.subscribe("alice", 2)
        positions.advance({2: 5}, changes("alice", "bob"))
        change = sub.changes.get_nowait()
        assert change.applied_offset == 5
        assert list(change.lines) == [LineId("alice", "cheap", "TEA", 100)]
        assert change.summaries == {"cheap": Summary(1, 100, 1)}
        assert not sub.overflowed
        for offset in (6, 7, 8):  # a full queue is dropped: the reader must start afresh
            positions.advance({2: offset}, changes("alice", quantity=offset))
        assert sub.overflowed
        assert [sub.changes.get_nowait().applied_offset for _ in range(1)] == [8]
        assert sub.changes.empty()
        positions.unsubscribe(sub)
        assert positions.subscriber_count == 0

    asyncio.run(scenario())


def test_past_the_waiter_cap_a_request_is_refused_at_once() -> None:
    async def scenario() -> None:
        positions = Positions({0: 0}, caps=Caps(waiters=2))
        waiting = [asyncio.create_task(positions.wait_for(0, 5, 5)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(TooBusy):
            await positions.wait_for(0, 5, 5)
        await positions.wait_for(0, 0, 5)  # already applied: never counted against the cap
        positions.advance({0: 5}, Changes())
        await asyncio.gather(*waiting)
        assert positions.waiter_count == 0

    asyncio.run(scenario())


def test_timed_out_waiters_leave_in_constant_time_and_the_rest_still_wake() -> None:
    async def scenario() -> None:
        positions = Positions({0: 0}, caps=Caps(waiters=10_000))
        staying = asyncio.create_task(positions.wait_for(0, 2, 5))
        leaving = [asyncio.create_task(positions.wait_for(0, 1, 0.01)) for _ in range(1000)]
        results = await asyncio.gather(*leaving, return_exceptions=True)
        assert all(isinstance(r, NotYetConsistent) for r in results)
        assert positions.waiter_count == 1
        # The gone were swept once they outnumbered the live: the heap does not keep them.
        assert len(positions._waiters[0]) < 64
        positions.advance({0: 2}, Changes())
        await staying
        assert positions.waiter_count == 0
        assert positions._waiters == {}

    asyncio.run(scenario())


def test_streams_are_capped_per_user_and_in_total() -> None:
    async def scenario() -> None:
        positions = Positions({}, caps=Caps(streams=3, streams_per_user=2))
        first = positions.subscribe("alice", 0)
        positions.subscribe("alice", 0)
        with pytest.raises(TooManyStreams):
            positions.subscribe("alice", 0)
        positions.subscribe("bob", 1)
        with pytest.raises(TooBusy):
            positions.subscribe("carol", 2)
        positions.unsubscribe(first)
        positions.unsubscribe(first)  # twice changes nothing
        assert positions.subscriber_count == 2
        positions.subscribe("carol", 2)
        assert positions.subscriber_count == 3

    asyncio.run(scenario())
