"""Several query instances as one service: what a forwarded read adds, an ingest shared by two
instances, and how soon an added instance serves the partitions it is given.

Instances join one cluster by sharing ORDERS_TOPIC and QUERY_MEMBERS_TOPIC; each benchmark gives
its cluster a members topic of its own, so that no other run's heartbeats count as members.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.harness import wrk
from devtools.processes import ServiceFailed, ServiceProcess
from query_service.cluster.forwarding import SERVED_BY_HEADER
from query_service.cluster.placement import placement
from query_service.view.partitioning import partition_for

Launch = Callable[[str, Mapping[str, str]], ServiceProcess]
# Forwarded reads are compared with local ones at this pace: a latency, not a maximum.
FORWARD_READ_RATE = 200
FORWARD_READ_CONNECTIONS = 4
# Users in each set the reads are spread over, and how many of each are checked by X-Served-By.
FORWARD_USERS = 1000
FORWARD_CHECKS = 5


def instance_env(
    base: Mapping[str, str], state_dir: Path, instance_id: str, replicas: int, members: str
) -> dict[str, str]:
    return {
        **base,
        "QUERY_STATE_DIR": str(state_dir),
        "QUERY_INSTANCE_ID": instance_id,
        "QUERY_REPLICAS": str(replicas),
        "QUERY_MEMBERS_TOPIC": members,
    }


def balanced_ids(
    prefix: str, count: int, partitions: int, replicas: int, taken: Sequence[str] = ()
) -> list[str]:
    """`count` new instance ids that, beside `taken`, rendezvous placement gives shares as equal
    as the numbers allow: the figures then compare instances, not the luck of a hash."""
    for n in range(10_000):
        ids = [*taken, *(f"{prefix}{n}-{i}" for i in range(count))]
        shares = [len(held) for held in placement(ids, partitions, replicas).values()]
        if max(shares) - min(shares) <= (0 if partitions * replicas % len(ids) == 0 else 1):
            return ids[len(taken) :]
    raise RuntimeError(f"no balanced ids for {count} more beside {list(taken)}")


def held_partitions(instance: ServiceProcess) -> tuple[bool, dict[int, int]]:
    """Whether the instance is ready, and the partitions it holds with the records it has applied
    of each (offset + 1); /health/ready tells both, also while it answers 503."""
    answer = httpx.get(f"{instance.url}/health/ready", timeout=2)
    partitions: dict[str, dict[str, Any]] = answer.json()["partitions"]
    return answer.status_code == 200, {
        int(p): state["applied_offset"] + 1 for p, state in partitions.items()
    }


def settled(instances: Sequence[ServiceProcess], partitions: int, replicas: int) -> bool:
    """Every instance ready, and every partition held by exactly `replicas` of them: no copy is
    still moving."""
    counts = dict.fromkeys(range(partitions), 0)
    for instance in instances:
        if instance.popen is None or instance.popen.poll() is not None:
            raise ServiceFailed(f"{instance.module} exited:\n{instance.log_tail()}")
        try:
            ready, held = held_partitions(instance)
        except httpx.TransportError:
            return False
        if not ready:
            return False
        for p in held:
            counts[p] = counts.get(p, 0) + 1
    return all(count == replicas for count in counts.values())


def wait_settled(
    instances: Sequence[ServiceProcess],
    partitions: int,
    replicas: int,
    timeout: float,
    poll_s: float = 0.1,
) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if settled(instances, partitions, replicas):
            return time.perf_counter() - started
        time.sleep(poll_s)
    tails = "\n".join(i.log_tail(10) for i in instances)
    raise ServiceFailed(f"the cluster did not settle within {timeout}s:\n{tails}")


@dataclass(frozen=True)
class SharedIngest:
    instances: int
    seconds: float
    cpu_s: float


def ingest_together(
    launch: Launch,
    envs: Sequence[Mapping[str, str]],
    partitions: int,
    replicas: int,
    timeout: float,
) -> tuple[SharedIngest, list[ServiceProcess]]:
    """Launch an instance per env at once, from empty state dirs: the seconds from the launch
    until every partition is held and caught up, and the CPU the instances used meanwhile."""
    started = time.perf_counter()
    instances = [launch(env["QUERY_INSTANCE_ID"], env) for env in envs]
    wait_settled(instances, partitions, replicas, timeout, poll_s=0.05)
    seconds = time.perf_counter() - started
    cpu = sum(instance.cpu_seconds() for instance in instances)
    return SharedIngest(len(instances), seconds, cpu), instances


def served_by(instance: ServiceProcess, user: str) -> str:
    answer = httpx.get(f"{instance.url}/users/{user}/items", timeout=5)
    answer.raise_for_status()
    return answer.headers[SERVED_BY_HEADER]


def forwarding_cost(
    entry: ServiceProcess,
    entry_id: str,
    users: Sequence[str],
    partitions: int,
    seconds: float,
    workdir: Path,
) -> dict[str, Any]:
    """GET /users/{id}/items through `entry` at a fixed pace, for users whose partition it holds
    and for users whose partition it does not (forwarded), one after the other."""
    _, held = held_partitions(entry)
    sets = {
        "local": [u for u in users if partition_for(u, partitions) in held][:FORWARD_USERS],
        "forwarded": [u for u in users if partition_for(u, partitions) not in held][:FORWARD_USERS],
    }
    found: dict[str, Any] = {"entry": entry_id, "held": sorted(held)}
    for name, chosen in sets.items():
        if not chosen:
            raise RuntimeError(f"no {name} users through {entry_id}, which holds {sorted(held)}")
        servers = {served_by(entry, user) for user in chosen[:FORWARD_CHECKS]}
        as_expected = servers == {entry_id} if name == "local" else entry_id not in servers
        if not as_expected:
            raise RuntimeError(f"the {name} users were served by {servers}, not as expected")
        listed = workdir / f"{name}-users.txt"
        listed.write_text("\n".join(chosen) + "\n")
        reads = wrk(
            entry,
            "get_listed_users.lua",
            seconds=seconds,
            connections=FORWARD_READ_CONNECTIONS,
            env={"BENCH_USERS_FILE": str(listed), "BENCH_RATE": str(FORWARD_READ_RATE)},
        )
        if reads.non_2xx or reads.socket_errors:
            raise RuntimeError(f"GET of the {name} users failed: {reads}")
        found[name] = {"users": len(chosen), "served_by": sorted(servers), **reads.as_dict()}
    return found


def new_instance_ready(
    launch: Launch, env: Mapping[str, str], timeout: float
) -> tuple[float, int, ServiceProcess]:
    """Seconds from the launch of an instance joining a running cluster until it is ready, and
    the records it applied to get there (every partition it holds built from the log)."""
    started = time.perf_counter()
    instance = launch(env["QUERY_INSTANCE_ID"], env)
    instance.wait_http("/health/ready", timeout, poll_s=0.05)
    seconds = time.perf_counter() - started
    _, held = held_partitions(instance)
    return seconds, sum(held.values()), instance
