"""A new instance beside a caught-up one: its partitions handed over as checkpoints against the
same partitions replayed from the log (issue 19).

N events over N/10 users drawn uniformly on 6 partitions; instance `a` folds them all. Then `b`
joins with the cluster secret and is timed from its launch until ready (every partition it takes
is handed over by `a`); it leaves, `a` takes its partitions back, and `b` joins again under the
same id (so the same partitions) from an empty state dir without the secret, replaying them.

Before that, the serving instance's own ingest of a backlog of new events is measured while a
client holding the secret fetches a checkpoint of each of its partitions, and then for as long
again with nothing served.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from bench import cluster
from devtools.processes import ServiceFailed, ServiceProcess
from query_service.cluster import credential
from query_service.cluster.credential import CLUSTER_AUTH_HEADER

SECRET = "bench-cluster-secret-of-32-characters-or-more"
# New events behind which the serving instance's two windows are measured (fewer when the
# history is smaller): at ~8k events/s, over 30 s of work.
BACKLOG_EVENTS = 300_000
# The least backlog: a smoke run's, whose figures only show that the code runs (it may run out
# before the windows end; a real run may not). When even the second window finds nothing left,
# a smoke run tries again with twice the backlog, up to SMOKE_TRIES times.
MIN_BACKLOG_EVENTS = 5_000
SMOKE_TRIES = 4
BACKLOG_TIMEOUT_S = 600


class BacklogRanOut(ServiceFailed):
    """The serving instance folded the whole backlog before the windows ended."""


def metric(instance: ServiceProcess, name: str, labels: str = "") -> float:
    text = httpx.get(f"{instance.ops_url}/metrics", timeout=5).text
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def fetch_checkpoint(instance: ServiceProcess, topic: str, partition: int) -> int:
    """A checkpoint of `partition` from `instance` as another instance of the cluster fetches
    it, by curl into /dev/null (the receiver is another machine: this one's two cores should go
    to the instance measured); its bytes."""
    auth = credential.sign(SECRET.encode(), topic, partition, time.time())
    url = f"{instance.url}/internal/partitions/{partition}/checkpoint"
    write_out = "%{http_code} %{size_download}"
    header = f"{CLUSTER_AUTH_HEADER}: {auth}"
    done = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", write_out, "-H", header, url],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    status, _, size = done.stdout.partition(" ")
    if done.returncode != 0 or status != "200":
        raise ServiceFailed(f"checkpoint of partition {partition}: {status} {done.stderr}")
    return int(size)


def serving_ingest(
    serving: ServiceProcess,
    topic: str,
    partitions: int,
    produce: Callable[[int], None],
    backlog: int,
    smoke: bool,
) -> dict[str, Any]:
    """The serving instance's ingest over a backlog of new events in two windows of the same
    length: while every partition of it is fetched once, one after the other (a new copy of
    each, as a receiver fetches them), and then with nothing served. Both must end before the
    backlog does, or the second window would measure an idle instance."""
    counter = "query_events_applied_total"
    before = metric(serving, counter)
    produce(backlog)

    started, first = time.perf_counter(), metric(serving, counter)
    sent = sum(fetch_checkpoint(serving, topic, p) for p in range(partitions))
    serving_s, served = time.perf_counter() - started, metric(serving, counter)
    time.sleep(serving_s)
    alone_s, last = time.perf_counter() - started - serving_s, metric(serving, counter)
    ran_out = last >= before + backlog
    if (ran_out and not smoke) or last == served:
        raise BacklogRanOut(f"a backlog of {backlog} new events ran out before the windows ended")
    with_rate = (served - first) / serving_s
    alone_rate = (last - served) / alone_s
    # The rest of the backlog folded, so that the hand-off measured next finds a caught-up copy.
    deadline = time.perf_counter() + BACKLOG_TIMEOUT_S
    while metric(serving, counter) < before + backlog:
        if time.perf_counter() > deadline:
            raise ServiceFailed(f"the backlog was not folded within {BACKLOG_TIMEOUT_S}s")
        time.sleep(0.1)
    return {
        "window_s": round(serving_s, 2),
        "checkpoints": partitions,
        "bytes": sent,
        "serving_events_per_s": round(with_rate),
        "alone_events_per_s": round(alone_rate),
        "ratio": round(with_rate / alone_rate, 3),
        "backlog_ran_out": ran_out,
    }


def measure(
    launch: cluster.Launch,
    base: Mapping[str, str],
    workdir: Path,
    events: int,
    partitions: int,
    timeout: float,
    produce: Callable[[int], None],
    *,
    smoke: bool = False,
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

    backlog = min(BACKLOG_EVENTS, max(MIN_BACKLOG_EVENTS, events // 3))
    for attempt in range(1, SMOKE_TRIES + 1):
        try:
            serving_found = serving_ingest(
                serving, base["ORDERS_TOPIC"], partitions, produce, backlog, smoke
            )
            break
        except BacklogRanOut:
            if not smoke or attempt == SMOKE_TRIES:
                raise
            backlog *= 2
    cluster.wait_settled([serving], partitions, 1, timeout)

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
        "serving": serving_found,
    }
