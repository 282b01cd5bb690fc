"""A new instance beside a caught-up one: its partitions handed over as checkpoints against the
same partitions replayed from the log (issue 19).

N events over N/10 users drawn uniformly on 6 partitions; instance `a` folds them all. Then `b`
joins with the cluster secret and is timed from its launch until ready (every partition it takes
is handed over by `a`); it leaves, `a` takes its partitions back, and `b` joins again under the
same id (so the same partitions) from an empty state dir without the secret, replaying them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from bench import cluster
from devtools.processes import ServiceFailed, ServiceProcess

SECRET = "bench-cluster-secret-of-32-characters-or-more"


def metric(instance: ServiceProcess, name: str, labels: str = "") -> float:
    text = httpx.get(f"{instance.ops_url}/metrics", timeout=5).text
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def measure(
    launch: cluster.Launch,
    base: Mapping[str, str],
    workdir: Path,
    events: int,
    partitions: int,
    timeout: float,
) -> dict[str, Any]:
    members = f"{base['ORDERS_TOPIC']}.members-handoff"
    serving_id, added_id = cluster.balanced_ids("handoff", 2, partitions, 1)

    def env(instance_id: str, *, secret: bool) -> dict[str, str]:
        state = workdir / f"state-{instance_id}-{uuid.uuid4().hex[:6]}"
        found = cluster.instance_env(base, state, instance_id, 1, members)
        if secret:
            found["QUERY_CLUSTER_SECRET"] = SECRET
        return found

    serving = launch(serving_id, env(serving_id, secret=True))
    serving.wait_http("/health/ready", timeout, poll_s=0.05)

    handed_s, _, added = cluster.new_instance_ready(launch, env(added_id, secret=True), timeout)
    _, held = cluster.held_partitions(added)
    installed = metric(added, "query_handoffs_total", '{outcome="installed"}')
    moved = metric(added, "query_handoff_bytes_total", '{direction="received"}')
    replayed_by_handoff = metric(added, "query_events_applied_total")
    if installed != len(held):
        raise ServiceFailed(
            f"{added_id} installed {installed:g} of its {len(held)} partitions by hand-off:\n"
            f"{added.log_tail(20)}"
        )
    added.stop()
    cluster.wait_settled([serving], partitions, 1, timeout)

    replay_s, replayed, again = cluster.new_instance_ready(
        launch, env(added_id, secret=False), timeout
    )
    again.stop()
    serving.stop()
    return {
        "events": events,
        "partitions_moved": sorted(held),
        "handoff": {
            "ready_s": round(handed_s, 2),
            "bytes": int(moved),
            "events_replayed": int(replayed_by_handoff),
        },
        "replay": {"ready_s": round(replay_s, 2), "events_folded": replayed},
        "speedup": round(replay_s / handed_s, 2),
    }
