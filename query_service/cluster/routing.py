"""Where a read is answered: the one routing decision, pure (no Kafka, no HTTP, no clock).

The forwarding adapter (forwarding.py) waits, forwards and maps; everything that decides lives
here and is property-tested.
"""

from __future__ import annotations

import random
from collections.abc import Set
from dataclasses import dataclass, replace

from query_service.cluster.model import ClusterView, Member


@dataclass(frozen=True, slots=True)
class Local:
    """Serve here (waiting for the token's offset if need be)."""


@dataclass(frozen=True, slots=True)
class Forward:
    member: Member


@dataclass(frozen=True, slots=True)
class Unavailable:
    """No copy can answer now; worth deciding again until the read's wait runs out."""

    reason: str


@dataclass(frozen=True, slots=True)
class NotHeld(Unavailable):
    """A forwarded read reached an instance that does not hold the partition: refuse at once, so
    that the sender asks another copy (a forwarded read is never forwarded again)."""


Route = Local | Forward | Unavailable


def serves_here(*, local_holds: bool, local_ready: bool, local_fresh: bool = True) -> bool:
    """The first rule of `route`, which needs no view of the cluster: this copy holds the
    partition, has caught up with it, and this instance's lease is current (it heard its own
    heartbeat back from Kafka lately, so the others still count it as the holder and it still
    hears the log). The hot path asks this before building a view."""
    return local_holds and local_ready and local_fresh


def route(
    view: ClusterView,
    partition: int,
    token_offset: int | None,
    *,
    local_ready: bool,
    local_holds: bool,
    forwarded: bool,
    local_fresh: bool = True,
    rng: random.Random | None = None,
) -> Route:
    """Where a read of `partition` goes.

    Here, if this instance holds the partition and has caught up with it. A forwarded read of a
    partition not held here is refused at once. Else to another instance whose heartbeat says
    its copy is caught up, preferring copies that have applied the token; a read that was
    forwarded once is never forwarded again. Else here if this copy is still catching up and the
    read has a token to wait for (never a read without one: that would be an incomplete view).
    Else nowhere for now.

    A copy not under a current lease (`local_fresh` false, model.covers: cut off from Kafka,
    just resumed from a pause, or behind the log's end as of the last heartbeat) may be behind
    by any amount, and may have been placed elsewhere meanwhile: it answers only reads with a
    token (which wait for their offset), and refuses a forwarded read without one at once, so
    that the sender asks another copy.
    """
    if serves_here(local_holds=local_holds, local_ready=local_ready, local_fresh=local_fresh):
        return Local()
    if forwarded and not local_holds:
        return NotHeld(f"this instance does not hold partition {partition}")
    if forwarded and not local_fresh and token_offset is None:
        return NotHeld(f"this copy of partition {partition} may be stale: its lease has lapsed")
    if not forwarded:
        copies = [
            m
            for m in view.members.values()
            if m.instance_id != view.me
            and (state := m.partitions.get(partition)) is not None
            and state.ready
        ]
        if copies:
            wanted = -1 if token_offset is None else token_offset
            applied = [m for m in copies if m.partitions[partition].applied >= wanted]
            if applied:
                return Forward((rng or random).choice(applied))
            return Forward(max(copies, key=lambda m: m.partitions[partition].applied))
    if local_holds and token_offset is not None:
        return Local()
    if local_holds and not local_fresh:
        return Unavailable(f"this copy of partition {partition} is not under a current lease")
    if local_holds:
        return Unavailable(f"this instance is still catching up with partition {partition}")
    return Unavailable(f"no instance has caught up with partition {partition} yet")


def reachable(view: ClusterView, suspects: Set[str], moved: Set[tuple[str, int]]) -> ClusterView:
    """The view without the members a forward could not reach (`suspects`) and without the
    copies a member said it no longer holds (`moved`: instance id, partition)."""
    if not suspects and not moved:
        return view
    members = {
        key: _without(member, {p for (who, p) in moved if who == key})
        for key, member in view.members.items()
        if key not in suspects or key == view.me
    }
    return ClusterView(view.me, members, view.partitions, view.replicas)


def _without(member: Member, partitions: set[int]) -> Member:
    if not partitions:
        return member
    kept = {p: state for p, state in member.partitions.items() if p not in partitions}
    return replace(member, partitions=kept)
