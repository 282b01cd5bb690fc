"""Placement by rendezvous hashing: every partition held by min(replicas, members) members, and a
change of membership moves only what it must."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from query_service.placement import holders, placement

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
        assert set(owners) == set(holders(members, partition, replicas))


@settings(max_examples=200, deadline=None)
@given(member_sets, st.text("xyz", min_size=1, max_size=6), st.integers(1, 64), st.integers(1, 3))
def test_a_joining_member_only_takes_partitions(
    members: set[str], newcomer: str, partitions: int, replicas: int
) -> None:
    if newcomer in members:
        return
    before = placement(members, partitions, replicas)
    after = placement(members | {newcomer}, partitions, replicas)
    for member in members:
        # The others only ever lose partitions, and only to the newcomer.
        assert after[member] <= before[member]
        assert before[member] - after[member] <= after[newcomer]


def test_the_placement_is_the_same_on_every_instance() -> None:
    members = ["query-a", "query-b", "query-c"]
    assert placement(members, 6, 2) == placement(list(reversed(members)), 6, 2)
    assert sum(len(parts) for parts in placement(members, 6, 2).values()) == 12
