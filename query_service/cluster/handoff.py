"""Whether a partition this instance takes up should be handed over as a checkpoint, and by
whom. Pure: the runner asks, the receiver (ingest/handoff.py) fetches.

A copy is handed over when this instance has no state of the partition, or its state is more
than `min_lag` events behind the log's end; the source is another member whose copy (held and
caught up, or kept after a move) has applied the most, and more than this one's.
"""

from __future__ import annotations

from dataclasses import dataclass

from query_service.cluster.model import ClusterView


@dataclass(frozen=True, slots=True)
class Source:
    instance_id: str
    url: str
    applied: int


def wants_handoff(applied: int, end: int, min_lag: int) -> bool:
    """`applied`: this instance's last applied offset (-1: no state); `end`: the log's end."""
    behind = end - (applied + 1)
    if applied < 0:
        return end > 0
    return behind > min_lag


def choose_source(view: ClusterView, partition: int, applied: int, min_lag: int) -> Source | None:
    """The member to ask for a checkpoint of `partition`, or None if none is worth asking."""
    found: list[Source] = []
    for member in view.members.values():
        if member.instance_id == view.me:
            continue
        state = member.partitions.get(partition)
        if state is not None and state.ready:
            offered = state.applied
        elif partition in member.kept:
            offered = member.kept[partition]
        else:
            continue
        if offered < 0 or (applied >= 0 and offered - applied <= min_lag):
            continue
        found.append(Source(member.instance_id, member.url, offered))
    if not found:
        return None
    return max(found, key=lambda s: (s.applied, s.instance_id))
