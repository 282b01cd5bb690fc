"""Which instances hold which partitions: rendezvous hashing with bounded loads. Pure.

Every instance computes the same placement from the same member set, with no coordinator: the
(member, partition) pairs are served strongest preference first, each member up to its share of
partitions * replicas / members, until every partition has `replicas` distinct copies. Plain
rendezvous hashing moves the least on a change but, with few partitions, can give one member
most of them (5 of 6 was seen with 3 members); the share bound keeps them even, at the cost of a
few more moves when membership changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection


def _rank(member: str, partition: int) -> bytes:
    return hashlib.blake2b(f"{partition}/{member}".encode(), digest_size=8).digest()


def placement(
    members: Collection[str], partitions: int, replicas: int
) -> dict[str, frozenset[int]]:
    """Each member's partitions (members with none map to an empty set)."""
    held: dict[str, set[int]] = {member: set() for member in sorted(members)}
    if not held:
        return {}
    copies = min(replicas, len(held))
    # Each member's share is the even split, rounded down; the remainder goes one each to the
    # members that reach for it first.
    share, remainder = divmod(partitions * copies, len(held))

    def has_room(member: str) -> bool:
        load = len(held[member])
        over = sum(len(parts) > share for parts in held.values())
        return load < share or (load == share and over < remainder)

    # Every (member, partition) pair by how much the member wants the partition: the strongest
    # preferences are served first.
    pairs = sorted(((_rank(m, p), m, p) for m in held for p in range(partitions)), reverse=True)
    needed = [copies] * partitions
    for _, member, partition in pairs:
        if needed[partition] and has_room(member):
            held[member].add(partition)
            needed[partition] -= 1
    # The greedy pass can leave a partition whose only members with room already hold it:
    # move one of a full member's other partitions to a member with room, then take its place.
    for partition in range(partitions):
        while needed[partition]:
            free = [m for m in held if partition not in held[m]]
            target = next((m for m in free if has_room(m)), None)
            if target is None:
                under = next(m for m in held if has_room(m))
                full = max(free, key=lambda m: (len(held[m]), m))
                moved = min(held[full] - held[under])
                held[full].remove(moved)
                held[under].add(moved)
                target = full
            held[target].add(partition)
            needed[partition] -= 1
    return {member: frozenset(found) for member, found in held.items()}
