"""Placement by rendezvous hashing with bounded loads: every partition held by min(replicas,
members) distinct members, shares within one partition of each other, the same everywhere."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from query_service.cluster.placement import placement

member_sets = st.sets(
    st.text("abcdefgh-0123456789", min_size=1, max_size=12), min_size=1, max_size=8
)


@settings(max_examples=200, deadline=None)
@given(member_sets, st.integers(1, 64), st.integers(1, 4))
def test_each_partition_has_replicas_distinct_holders(
    members: set[str], partitions: int, replicas: int
) -> None:
    held = placement(members, partitions, replicas)
    assert set(held) == members
    for partition in range(partitions):
        owners = [m for m, parts in held.items() if partition in parts]
        assert len(owners) == min(replicas, len(members))
    loads = [len(parts) for parts in held.values()]
    assert max(loads) - min(loads) <= 1


@settings(max_examples=200, deadline=None)
@given(member_sets, st.text("xyz", min_size=1, max_size=6), st.integers(1, 64), st.integers(1, 3))
def test_a_joining_member_moves_a_bounded_share(
    members: set[str], newcomer: str, partitions: int, replicas: int
) -> None:
    if newcomer in members:
        return
    before = placement(members, partitions, replicas)
    after = placement(members | {newcomer}, partitions, replicas)
    moved = sum(len(before[m] - after[m]) for m in members)
    # Mostly what the newcomer takes; the load bound may shift a few more.
    assert moved <= len(after[newcomer]) + partitions * min(replicas, len(members)) // 2 + 1


def test_the_placement_is_the_same_on_every_instance() -> None:
    members = ["query-a", "query-b", "query-c"]
    assert placement(members, 6, 2) == placement(list(reversed(members)), 6, 2)
    assert sum(len(parts) for parts in placement(members, 6, 2).values()) == 12
