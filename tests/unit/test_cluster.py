"""Where a read goes (cluster.routing.route): here, forwarded once to a caught-up copy, or not."""

from __future__ import annotations

import random

from query_service.cluster.model import ClusterView, Member, PartitionState, alive
from query_service.cluster.routing import Forward, Local, Unavailable, route


def member(name: str, **partitions: tuple[int, bool]) -> Member:
    return Member(
        instance_id=name,
        url=f"http://{name}",
        heartbeat_ms=1_000,
        partitions={int(p[1:]): PartitionState(a, 0, r) for p, (a, r) in partitions.items()},
    )


def view(*members: Member, me: str = "a") -> ClusterView:
    return ClusterView(me, {m.instance_id: m for m in members}, partitions=4, replicas=2)


def test_a_caught_up_copy_here_answers_here() -> None:
    here = view(member("a", p0=(5, True)), member("b", p0=(9, True)))
    assert route(here, 0, 9, local_ready=True, local_holds=True, forwarded=False) == Local()


def test_otherwise_a_copy_that_applied_the_token_is_preferred() -> None:
    cluster = view(member("a"), member("b", p1=(3, True)), member("c", p1=(8, True)))
    found = route(cluster, 1, 7, local_ready=False, local_holds=False, forwarded=False)
    assert isinstance(found, Forward)
    assert found.member.instance_id == "c"
    # Without a token, any caught-up copy will do.
    picks = [
        route(cluster, 1, None, local_ready=False, local_holds=False, forwarded=False, rng=rng)
        for rng in (random.Random(seed) for seed in range(20))
    ]
    assert {p.member.instance_id for p in picks if isinstance(p, Forward)} == {"b", "c"}


def test_a_copy_still_catching_up_is_never_a_forward_target() -> None:
    cluster = view(member("a"), member("b", p2=(100, False)))
    found = route(cluster, 2, None, local_ready=False, local_holds=False, forwarded=False)
    assert isinstance(found, Unavailable)


def test_a_forwarded_read_is_never_forwarded_again() -> None:
    # Each instance believes the other holds the partition: the second hop answers itself.
    a_view = view(member("a"), member("b", p3=(4, True)), me="a")
    b_view = view(member("a", p3=(4, True)), member("b"), me="b")
    first = route(a_view, 3, None, local_ready=False, local_holds=False, forwarded=False)
    assert isinstance(first, Forward)
    second = route(b_view, 3, None, local_ready=False, local_holds=False, forwarded=True)
    assert isinstance(second, Unavailable)


def test_a_holder_catching_up_serves_tokens_here_when_nobody_else_can() -> None:
    cluster = view(member("a", p0=(2, False)))
    assert route(cluster, 0, 1, local_ready=False, local_holds=True, forwarded=True) == Local()


def test_members_not_heard_from_within_the_timeout_are_gone() -> None:
    members = {"a": member("a"), "old": Member("old", "http://old", 0)}
    assert set(alive(members, now_ms=3_000, timeout_ms=2_500)) == {"a"}


def test_a_member_record_round_trips() -> None:
    record = member("a", p0=(5, True), p3=(-1, False))
    assert Member.decode(record.encode()) == record
