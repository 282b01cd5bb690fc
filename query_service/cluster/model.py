"""The query instances as each one sees them. Pure: no Kafka, no HTTP (where a read goes: routing).

Every instance heartbeats a `Member` record into a compacted Kafka topic (see membership.py).
From the live members each computes the same placement (placement.py), and from their
heartbeats which copies of a partition are caught up and how far they have applied. Every copy
of a partition is an independent projection of the same log, so any copy that has applied
offset X can answer a token for X.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from query_service.cluster.placement import placement


@dataclass(frozen=True, slots=True)
class PartitionState:
    applied: int
    lag: int
    ready: bool


@dataclass(frozen=True, slots=True)
class Member:
    instance_id: str
    url: str
    # Wall-clock milliseconds of the heartbeat: instances' clocks are assumed in step (NTP).
    heartbeat_ms: int
    partitions: dict[int, PartitionState] = field(default_factory=dict)
    ready: bool = False
    # One per process start: tells a restart of this instance from another process using its id.
    incarnation: str = ""
    # Partitions let go but still on disk (QUERY_DROP_GRACE_S), with their applied offsets:
    # never read from, but a copy another instance may ask to be handed.
    kept: dict[int, int] = field(default_factory=dict)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "instance_id": self.instance_id,
                "url": self.url,
                "heartbeat_ms": self.heartbeat_ms,
                "ready": self.ready,
                "incarnation": self.incarnation,
                "partitions": {
                    str(p): [s.applied, s.lag, s.ready] for p, s in self.partitions.items()
                },
                "kept": {str(p): applied for p, applied in self.kept.items()},
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> Member:
        body: dict[str, Any] = orjson.loads(raw)
        return cls(
            instance_id=str(body["instance_id"]),
            url=str(body["url"]),
            heartbeat_ms=int(body["heartbeat_ms"]),
            ready=bool(body.get("ready", False)),
            incarnation=str(body.get("incarnation", "")),
            partitions={
                int(p): PartitionState(int(a), int(lag), bool(ready))
                for p, (a, lag, ready) in body.get("partitions", {}).items()
            },
            kept={int(p): int(a) for p, a in body.get("kept", {}).items()},
        )


@dataclass(frozen=True)
class ClusterView:
    me: str
    members: dict[str, Member]
    partitions: int
    replicas: int

    def placement(self) -> dict[str, frozenset[int]]:
        return placement(list(self.members), self.partitions, self.replicas)


def alive(members: dict[str, Member], now_ms: int, timeout_ms: int) -> dict[str, Member]:
    return {k: m for k, m in members.items() if now_ms - m.heartbeat_ms <= timeout_ms}


@dataclass(frozen=True, slots=True)
class Lease:
    """One heartbeat's round trip through Kafka, and the log's end when it was sent.

    `started` (monotonic seconds) is taken before the heartbeat is sent and `ends` (each held
    partition's end offset) is read after, so `ends` covers every event acknowledged before
    `started`. The lease is heard back once the heartbeat returns from the members topic (with
    everything written there before it); the others drop this instance only when its heartbeats
    stop for the whole member timeout, so within a share of it the placement is still current.
    """

    started: float
    ends: dict[int, int]


def covers(
    leases: tuple[Lease, ...], now: float, lease_s: float, partition: int, applied: int
) -> bool:
    """Whether a copy of `partition` that has applied `applied` may answer a read without a
    token: some lease heard back, less than `lease_s` old, whose end it has reached. Such an
    answer holds every event acknowledged more than `lease_s` before it."""
    return any(
        now - lease.started < lease_s and applied + 1 >= lease.ends.get(partition, _NEVER)
        for lease in leases
    )


_NEVER = 2**63
