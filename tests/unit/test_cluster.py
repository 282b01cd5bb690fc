"""Where a read goes (cluster.routing.route): here, forwarded once to a caught-up copy, or not;
the rules as examples, then as properties over any view of the cluster."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from query_service.cluster.model import ClusterView, Lease, Member, PartitionState, alive, covers
from query_service.cluster.routing import (
    Forward,
    Local,
    NotHeld,
    Unavailable,
    reachable,
    route,
    serves_here,
)


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


def test_a_lapsed_lease_serves_only_tokens_here_and_sends_other_reads_to_a_current_copy() -> None:
    # Cut off from Kafka, just resumed from a pause, or behind the log's end: maybe stale.
    cluster = view(member("a", p0=(5, True)), member("b", p0=(9, True)))
    alone = view(member("a", p0=(5, True)))

    def lapsed(where: ClusterView, token: int | None, forwarded: bool) -> object:
        return route(
            where,
            0,
            token,
            local_ready=True,
            local_holds=True,
            forwarded=forwarded,
            local_fresh=False,
        )

    without_token = lapsed(cluster, None, forwarded=False)
    assert isinstance(without_token, Forward)
    assert without_token.member.instance_id == "b"
    assert isinstance(lapsed(cluster, None, forwarded=True), NotHeld)
    assert type(lapsed(alone, None, forwarded=False)) is Unavailable
    # A token waits for its offset here: whatever the lease, a 200 only comes once it is applied.
    assert lapsed(alone, 4, forwarded=False) == Local()
    assert lapsed(cluster, 4, forwarded=True) == Local()


def test_a_lease_covers_a_copy_that_reached_its_end_while_it_is_young() -> None:
    older, newer = Lease(10.0, {0: 8, 1: 3}), Lease(11.0, {0: 12})
    assert not covers((), 10.5, 2.5, 0, 100)
    assert covers((older,), 12.4, 2.5, 0, 7)  # applied 7: offsets up to the end (8) reached
    assert not covers((older,), 12.4, 2.5, 0, 6)
    assert not covers((older,), 12.5, 2.5, 0, 7)  # too old
    assert not covers((older, newer), 12.0, 2.5, 2, 100)  # a partition no lease fenced
    # A newer lease's end not reached yet: the older one still counts while it is young...
    assert covers((older, newer), 12.0, 2.5, 0, 9)
    # ...and once it is not, the copy must reach the newer end.
    assert not covers((older, newer), 12.6, 2.5, 0, 9)
    assert covers((older, newer), 12.6, 2.5, 0, 11)


def test_members_not_heard_from_within_the_timeout_are_gone() -> None:
    members = {"a": member("a"), "old": Member("old", "http://old", 0)}
    assert set(alive(members, now_ms=3_000, timeout_ms=2_500)) == {"a"}


def test_a_member_record_round_trips() -> None:
    record = member("a", p0=(5, True), p3=(-1, False))
    assert Member.decode(record.encode()) == record


def test_a_forwarded_read_of_a_partition_not_held_here_is_refused_at_once() -> None:
    cluster = view(member("a"), member("b", p1=(3, True)))
    found = route(cluster, 1, None, local_ready=False, local_holds=False, forwarded=True)
    assert isinstance(found, NotHeld)
    assert "partition 1" in found.reason


def test_a_holder_catching_up_never_serves_a_read_without_a_token() -> None:
    cluster = view(member("a", p0=(2, False)))
    found = route(cluster, 0, None, local_ready=False, local_holds=True, forwarded=False)
    assert type(found) is Unavailable
    assert "catching up" in found.reason


def test_reachable_leaves_out_suspects_and_copies_that_moved_but_never_this_instance() -> None:
    cluster = view(member("a", p0=(1, True)), member("b", p0=(5, True), p1=(6, True)))
    cluster = ClusterView("a", {**cluster.members, "c": member("c", p1=(7, True))}, 4, 2)
    found = reachable(cluster, suspects={"a", "c"}, moved={("b", 0)})
    assert set(found.members) == {"a", "b"}
    assert set(found.members["b"].partitions) == {1}
    assert found.members["a"] == cluster.members["a"]
    assert reachable(cluster, set(), set()) is cluster


# Properties: any view of up to four instances ("a" is this one), any partition, token and state.
NAMES = ("a", "b", "c", "d")
PARTITIONS = 2


@dataclass(frozen=True)
class Read:
    view: ClusterView
    partition: int
    token: int | None
    holds: bool
    ready: bool
    forwarded: bool
    fresh: bool = True

    def routed(self, seed: int = 0) -> Local | Forward | Unavailable:
        return route(
            self.view,
            self.partition,
            self.token,
            local_ready=self.ready,
            local_holds=self.holds,
            forwarded=self.forwarded,
            local_fresh=self.fresh,
            rng=random.Random(seed),
        )

    def ready_copies(self) -> list[Member]:
        """The other members whose heartbeat says their copy of the partition is caught up."""
        return [
            m
            for m in self.view.members.values()
            if m.instance_id != self.view.me
            and (state := m.partitions.get(self.partition)) is not None
            and state.ready
        ]


caught_up = st.sampled_from((True, True, False))
states = st.builds(PartitionState, st.integers(-1, 3), st.integers(0, 5), caught_up)
# Each partition held by a member or not (held and caught up more often than not, so that most
# views have several copies of the read's partition).
held = st.tuples(*[st.one_of(states, states, st.none())] * PARTITIONS).map(
    lambda found: {p: state for p, state in enumerate(found) if state is not None}
)


def named(name: str) -> st.SearchStrategy[Member]:
    return held.map(lambda partitions: Member(name, f"http://{name}", 1_000, partitions))


@st.composite
def reads(draw: st.DrawFn) -> Read:
    others = draw(st.sets(st.sampled_from(NAMES[1:]), min_size=1))
    cluster = {name: draw(named(name)) for name in ("a", *sorted(others))}
    holds = draw(st.booleans())
    return Read(
        ClusterView("a", cluster, PARTITIONS, 2),
        draw(st.integers(0, PARTITIONS - 1)),
        draw(st.one_of(st.integers(-1, 3), st.integers(-1, 3), st.none())),
        holds,
        holds and draw(st.booleans()),  # a copy is caught up only if it is held
        draw(st.booleans()),
        draw(st.sampled_from((True, True, False))),
    )


@settings(max_examples=200, deadline=None)
@given(reads(), st.integers(0, 3))
def test_the_hot_paths_shortcut_is_the_decisions_first_rule(read: Read, seed: int) -> None:
    if serves_here(local_holds=read.holds, local_ready=read.ready, local_fresh=read.fresh):
        assert read.routed(seed) == Local()


@settings(max_examples=200, deadline=None)
@given(reads(), st.integers(0, 3))
def test_here_only_with_a_complete_current_view_or_a_token_to_wait_for(
    read: Read, seed: int
) -> None:
    if isinstance(read.routed(seed), Local):
        assert read.holds
        assert (read.ready and read.fresh) or read.token is not None


@settings(max_examples=200, deadline=None)
@given(reads(), st.integers(0, 3))
def test_forwarded_once_at_most_and_refused_at_once_where_not_held(read: Read, seed: int) -> None:
    found = read.routed(seed)
    if read.forwarded:
        assert not isinstance(found, Forward)
        # Refused at once where not held, or where a lapsed lease cannot answer without a token.
        assert isinstance(found, NotHeld) == (
            not read.holds or (not read.fresh and read.token is None)
        )
    else:
        assert not isinstance(found, NotHeld)


@settings(max_examples=200, deadline=None)
@given(reads(), st.integers(0, 3))
def test_a_forward_goes_to_another_caught_up_copy_that_applied_the_token_if_any_has(
    read: Read, seed: int
) -> None:
    found = read.routed(seed)
    copies = read.ready_copies()
    if not isinstance(found, Forward):
        # Only a read this copy can answer, a forwarded one, or none caught up elsewhere.
        assert (
            (isinstance(found, Local) and read.ready and read.fresh) or read.forwarded or not copies
        )
        return
    assert found.member in copies
    wanted = -1 if read.token is None else read.token
    if any(m.partitions[read.partition].applied >= wanted for m in copies):
        assert found.member.partitions[read.partition].applied >= wanted


@st.composite
def contested_reads(draw: st.DrawFn) -> Read:
    """A read this copy cannot answer yet, with caught-up copies elsewhere on both sides of its
    token (random views rarely have them)."""
    behind = draw(st.integers(-1, 5))
    token = draw(st.integers(behind + 1, 7))
    ahead = draw(st.integers(token, 9))
    cluster = {
        "a": Member("a", "http://a", 1_000, draw(held)),
        "b": Member("b", "http://b", 1_000, {0: PartitionState(behind, 0, True)}),
        "c": Member("c", "http://c", 1_000, {0: PartitionState(ahead, 0, True)}),
        "d": draw(named("d")),
    }
    holds = draw(st.booleans())
    return Read(ClusterView("a", cluster, PARTITIONS, 2), 0, token, holds, False, False)


@settings(max_examples=100, deadline=None)
@given(contested_reads(), st.integers(0, 3))
def test_a_copy_that_applied_the_token_is_always_preferred(read: Read, seed: int) -> None:
    found = read.routed(seed)
    assert isinstance(found, Forward)
    assert read.token is not None
    assert found.member.partitions[0].applied >= read.token


@settings(max_examples=200, deadline=None)
@given(reads(), st.integers(0, 3))
def test_every_refusal_says_why(read: Read, seed: int) -> None:
    found = read.routed(seed)
    if isinstance(found, Unavailable):
        assert f"partition {read.partition}" in found.reason


@settings(max_examples=200, deadline=None)
@given(
    reads(),
    st.sets(st.sampled_from(NAMES)),
    st.sets(st.tuples(st.sampled_from(NAMES), st.integers(0, PARTITIONS - 1))),
)
def test_reachable_removes_exactly_the_suspects_and_the_moved_copies(
    read: Read, suspects: set[str], moved: set[tuple[str, int]]
) -> None:
    before = read.view
    after = reachable(before, suspects, moved)
    assert (after.me, after.partitions, after.replicas) == (before.me, before.partitions, 2)
    assert set(after.members) == {m for m in before.members if m not in suspects or m == "a"}
    for name, kept in after.members.items():
        gone = {p for who, p in moved if who == name}
        expected = {p: s for p, s in before.members[name].partitions.items() if p not in gone}
        assert kept.partitions == expected
        assert (kept.instance_id, kept.url, kept.ready) == (name, f"http://{name}", False)
