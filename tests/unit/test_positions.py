"""Read-your-writes waiters and SSE fan-out, on an event loop without Kafka."""

from __future__ import annotations

import asyncio

import pytest

from query_service.exceptions import NotYetConsistent
from query_service.positions import Positions
from query_service.projection import Changes, Line, LineId, Summary, SummaryId


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
