"""The query instances as each one sees them, and where a read goes. Pure: no Kafka, no HTTP.

Every instance heartbeats a `Member` record into a compacted Kafka topic (see membership.py).
From the live members each computes the same placement (placement.py), and from their
heartbeats which copies of a partition are caught up and how far they have applied. Every copy
of a partition is an independent projection of the same log, so any copy that has applied
offset X can answer a token for X.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import orjson

from query_service.placement import placement


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
        )


@dataclass(frozen=True, slots=True)
class Local:
    """Serve here (waiting for the token's offset if need be)."""


@dataclass(frozen=True, slots=True)
class Forward:
    member: Member


@dataclass(frozen=True, slots=True)
class Unavailable:
    reason: str


Route = Local | Forward | Unavailable


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


def route(
    view: ClusterView,
    partition: int,
    token_offset: int | None,
    *,
    local_ready: bool,
    local_holds: bool,
    forwarded: bool,
    rng: random.Random | None = None,
) -> Route:
    """Where a read of `partition` goes.

    Here, if this instance holds the partition and has caught up with it (the wait for the
    token, if any, happens here). Else to another instance whose heartbeat says its copy is
    caught up, preferring copies that have applied the token; a read that was forwarded once is
    never forwarded again. Else here if this copy is still catching up, or nowhere for now.
    """
    if local_holds and local_ready:
        return Local()
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
    if local_holds:
        return Local()
    return Unavailable(f"no instance has caught up with partition {partition} yet")
