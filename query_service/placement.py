"""Which instances hold which partitions: rendezvous hashing over the live members. Pure.

Every instance computes the same placement from the same member set, with no coordinator:
each partition goes to the `replicas` members that rank highest for it. A member joining or
leaving moves only the partitions it gains or held (about 1/n of them), never the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable


def _rank(member: str, partition: int) -> bytes:
    return hashlib.blake2b(f"{partition}/{member}".encode(), digest_size=8).digest()


def holders(members: Iterable[str], partition: int, replicas: int) -> list[str]:
    """The members that hold `partition`, best first (at most `replicas`)."""
    ranked = sorted(members, key=lambda member: _rank(member, partition), reverse=True)
    return ranked[:replicas]


def placement(
    members: Collection[str], partitions: int, replicas: int
) -> dict[str, frozenset[int]]:
    """Each member's partitions (members with none map to an empty set)."""
    held: dict[str, set[int]] = {member: set() for member in members}
    for partition in range(partitions):
        for member in holders(members, partition, replicas):
            held[member].add(partition)
    return {member: frozenset(found) for member, found in held.items()}
