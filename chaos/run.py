"""One chaos run: start the stack, post orders while the schedule injects faults, heal, verify,
stop everything, and report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from chaos.client import Client, Order, request_headers, sign_with
from chaos.faults import Injector, kinds_for, schedule
from chaos.stack import MEMBER_TIMEOUT_MS, Stack
from chaos.streams import StreamWatcher, expected_groups
from chaos.verify import Verdict, verify
from query_service.cluster.membership import LEASE_SHARE
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)

USERS = tuple(f"chaos-u{n:02d}" for n in range(20))
POISON_USER = "chaos-poison"
SUPERVISE_EVERY_S = 0.5
RSS_EVERY_S = 2.0
TAIL_S = 3.0  # orders keep flowing after the last fault has healed
BROWSERS = 3  # concurrent readers without a token
BROWSE_RATE = 2.0  # reads a second, each
STREAM_USERS = 3  # users whose item stream is watched throughout
STREAM_SETTLE_S = 60.0
# A read without a token holds every order acknowledged more than a lease before it.
LEASE_S = MEMBER_TIMEOUT_MS / 1000 * LEASE_SHARE


@dataclass
class Report:
    seconds: float
    seed: int
    workdir: str
    instances: int = 1
    replicas: int = 1
    wall_s: float = 0.0
    orders_posted: int = 0
    orders_acknowledged: int = 0
    orders_retried: int = 0  # acknowledged after at least one failed attempt
    orders_abandoned: int = 0  # never acknowledged within the bound (not a loss)
    orders_read_back: int = 0
    post_attempts: dict[str, int] = field(default_factory=dict)
    read_attempts: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    restarts_by_supervisor: dict[str, int] = field(default_factory=dict)
    exit_codes_seen: dict[str, list[int]] = field(default_factory=dict)
    longest_write_unavailability_s: float = 0.0
    longest_read_unavailability_s: float = 0.0
    # Reads: by outcome; by the instance asked, then the one that answered (X-Served-By).
    reads_served: dict[str, dict[str, int]] = field(default_factory=dict)
    forwards: int = 0  # reads answered by another instance than the one asked
    refused_connections: dict[str, int] = field(default_factory=dict)  # passed over: down
    reads_without_token: int = 0
    wrong_reads: list[str] = field(default_factory=list)
    stale_reads: list[str] = field(default_factory=list)
    longest_read_unavailability_by_partition_s: dict[int, float] = field(default_factory=dict)
    # From each instance's /metrics, summed over its processes.
    partition_moves: dict[str, int] = field(default_factory=dict)
    handoffs: dict[str, int] = field(default_factory=dict)
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    rss_mb: dict[str, dict[str, float]] = field(default_factory=dict)
    events_in_log: int = 0
    bad_records_in_log: int = 0
    verdict: dict[str, Any] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    processes_left: list[str] = field(default_factory=list)
    ok: bool = False

    def lines(self) -> list[str]:
        v = self.verdict
        return [
            f"chaos run: {self.seconds:.0f}s planned, {self.wall_s:.0f}s wall, seed {self.seed}, "
            f"{self.instances} query instance(s), {self.replicas} replica(s)",
            f"orders: {self.orders_posted} posted, {self.orders_acknowledged} acknowledged "
            f"(201), {self.orders_retried} of them after retries, {self.orders_abandoned} "
            f"abandoned, {self.orders_read_back} read back",
            f"POST attempts: {self.post_attempts}; retries: {self.retries}",
            f"GET attempts: {self.read_attempts}",
            f"faults: {self.faults}",
            f"restarts by the supervisor: {self.restarts_by_supervisor} "
            f"(exit codes {self.exit_codes_seen})",
            f"longest write unavailability: {self.longest_write_unavailability_s:.1f}s; "
            f"longest read unavailability: {self.longest_read_unavailability_s:.1f}s",
            f"reads served (asked -> answered by): {self.reads_served}; forwards: "
            f"{self.forwards}; without a token: {self.reads_without_token}; connections "
            f"refused (the read went to another instance): {self.refused_connections}",
            f"wrong reads: {len(self.wrong_reads)} {self.wrong_reads[:5]}; stale reads: "
            f"{len(self.stale_reads)} {self.stale_reads[:5]}",
            "longest read unavailability by partition (s): "
            f"{self.longest_read_unavailability_by_partition_s}",
            f"partition moves: {self.partition_moves}; hand-offs: {self.handoffs}",
            f"streams: {self.streams}",
            f"RSS (MB): {self.rss_mb}",
            f"log: {self.events_in_log} events, {self.bad_records_in_log} bad records",
            f"lost: {len(v.get('lost', []))}, lost in Kafka: {len(v.get('lost_in_kafka', []))}, "
            f"duplicates: {len(v.get('duplicates', []))}, invented: "
            f"{len(v.get('invented', []))}, users whose view differs: "
            f"{len(v.get('mismatched_users', []))}, bad records not dead-lettered: "
            f"{len(v.get('not_dead_lettered', []))}",
            f"unexpected answers: {self.unexpected[:10]}",
            f"processes left running: {self.processes_left}",
            "OK: no acknowledged order lost or counted twice" if self.ok else "FAILED",
        ]


def _rss(stack: Stack) -> dict[str, dict[str, float]]:
    """First sample (the first process, once ready), last (the last process, at the end), peak;
    a restart starts memory afresh, so growth is across the whole run's survivors."""
    figures: dict[str, dict[str, float]] = {}
    for name in stack.names:
        lives = [i for i in stack.incarnations[name] if i.rss_mb]
        if not lives:
            continue
        first, last = lives[0].rss_mb[0], lives[-1].rss_mb[-1]
        figures[name] = {
            "first_mb": round(first, 1),
            "last_mb": round(last, 1),
            "peak_mb": round(max(max(i.rss_mb) for i in lives), 1),
            "growth_mb": round(last - first, 1),
            "processes": len(stack.incarnations[name]),
        }
    return figures


async def _every(period: float, action: Any, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.to_thread(action)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)


async def _drive(stack: Stack, report: Report, rate: float, injector: Injector) -> Client:
    rng = random.Random(report.seed)
    client = Client(
        stack.services["command"].url,
        {name: stack.services[name].url for name in stack.queries},
        rng,
        USERS,
        order_deadline_s=max(90.0, report.seconds / 4),
        read_deadline_s=max(180.0, report.seconds / 4),
        partitions=KafkaSettings().orders_topic_partitions,
    )
    faults = schedule(report.seconds, report.seed, injector.kinds, stack.queries)
    run_id = uuid.uuid4().hex[:8]
    stop_side = asyncio.Event()
    supervisor = asyncio.create_task(_every(SUPERVISE_EVERY_S, stack.supervise_once, stop_side))
    sampler = asyncio.create_task(_every(RSS_EVERY_S, stack.sample, stop_side))
    faults_done = asyncio.Event()

    async def inject_all() -> None:
        try:
            for fault in faults:
                await asyncio.sleep(fault.gap_s)
                await asyncio.to_thread(injector.inject, fault, time.sleep)
        finally:
            faults_done.set()

    started = time.monotonic()
    injecting = asyncio.create_task(inject_all())
    tasks: list[asyncio.Task[None]] = []
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=50)
    async with httpx.AsyncClient(limits=limits) as http:
        browsers = [
            asyncio.create_task(client.browse(http, BROWSE_RATE, stop_side))
            for _ in range(BROWSERS)
        ]
        tick = 0
        while True:
            elapsed = time.monotonic() - started
            if elapsed >= report.seconds and faults_done.is_set():
                break
            tasks.append(asyncio.create_task(client.place_and_read(http, client.new_order(run_id))))
            tick += 1
            await asyncio.sleep(max(0.0, started + tick / rate - time.monotonic()))
        await injecting  # re-raises a fault that could not be injected or healed
        await asyncio.sleep(TAIL_S)
        await asyncio.gather(*tasks)
        stop_side.set()
        await asyncio.gather(*browsers)
    await asyncio.gather(supervisor, sampler)
    return client


async def _run_and_verify(stack: Stack, report: Report, rate: float, injector: Injector) -> None:
    """Traffic and faults with a few users' item streams watched throughout; once all is
    healed, the log against every instance's answers and each stream's view."""
    watchers = [
        StreamWatcher(user, stack.query_urls, random.Random(report.seed + n), request_headers)
        for n, user in enumerate(USERS[:STREAM_USERS])
    ]
    stop_streams = asyncio.Event()
    streaming = [asyncio.create_task(w.run(stop_streams)) for w in watchers]
    try:
        client = await _drive(stack, report, rate, injector)
        await asyncio.to_thread(stack.supervise_once)
        for name in stack.names:
            await asyncio.to_thread(stack.services[name].wait_http, "/health/ready", 120)
        verdict, expected = await asyncio.to_thread(
            verify,
            stack.broker.bootstrap_servers,
            stack.topic,
            stack.dlq_topic,
            stack.query_urls,
            client.orders,
            injector.poisoned,
            client.browsed,
            LEASE_S,
        )
        settled = await asyncio.gather(
            *(w.settle(expected_groups(expected, w.user_id), STREAM_SETTLE_S) for w in watchers)
        )
    finally:
        stop_streams.set()
        await asyncio.gather(*streaming)
    for watcher, on_the_log in zip(watchers, settled, strict=True):
        summary = {
            "settled_on_the_log": on_the_log,
            "connects": dict(watcher.connects),
            "snapshots": watcher.view.snapshots,
            "deltas": watcher.view.deltas,
            "errors": dict(watcher.errors),
            "violations": watcher.violations[:5],
        }
        report.streams[watcher.user_id] = summary
        if not on_the_log or watcher.violations:
            client.unexpected.append(f"the stream of {watcher.user_id}: {summary}")
    _fill(report, client, verdict)


def run(
    seconds: float,
    seed: int,
    workdir: Path,
    rate: float = 10.0,
    instances: int = 1,
    replicas: int = 1,
) -> Report:
    started = time.monotonic()
    report = Report(seconds, seed, str(workdir), instances, replicas)
    stack = Stack(workdir, instances, replicas)
    sign_with(stack.issuer)
    injector = Injector(stack, POISON_USER, kinds_for(instances, replicas))
    try:
        stack.start()
        asyncio.run(_run_and_verify(stack, report, rate, injector))
        stack.sample()
    finally:
        report.faults = dict(injector.counts)
        report.restarts_by_supervisor = dict(stack.restarts)
        report.exit_codes_seen = {k: v for k, v in stack.exits.items() if v}
        report.rss_mb = _rss(stack)
        report.partition_moves = stack.counter_totals("query_partition_moves_total")
        report.handoffs = stack.counter_totals("query_handoffs_total")
        report.processes_left = stack.stop()
        report.wall_s = round(time.monotonic() - started, 1)
    report.ok = bool(
        report.verdict.get("ok")
        and not report.unexpected
        and not report.processes_left
        and report.orders_acknowledged > 0
    )
    return report


def _fill(report: Report, client: Client, verdict: Verdict) -> None:
    orders: list[Order] = client.orders
    acknowledged = [o for o in orders if o.acknowledged]
    report.orders_posted = len(orders)
    report.orders_acknowledged = len(acknowledged)
    report.orders_retried = sum(1 for o in acknowledged if o.attempts > 1)
    report.orders_abandoned = len(orders) - len(acknowledged)
    report.orders_read_back = sum(1 for o in orders if o.read_back)
    report.post_attempts = dict(Counter(client.writes.statuses))
    report.read_attempts = dict(Counter(client.reads.statuses))
    report.retries = sum(o.attempts - 1 for o in orders)
    report.longest_write_unavailability_s = round(client.writes.longest_unavailability(), 1)
    report.longest_read_unavailability_s = round(client.reads.longest_unavailability(), 1)
    report.longest_read_unavailability_by_partition_s = {
        p: round(a.longest_unavailability(), 1)
        for p, a in sorted(client.reads_by_partition.items())
    }
    report.reads_served = client.served
    report.forwards = client.forwards
    report.refused_connections = client.refused
    report.reads_without_token = verdict.reads_judged
    report.wrong_reads = verdict.wrong_reads
    report.stale_reads = verdict.stale_reads
    report.events_in_log = verdict.events
    report.bad_records_in_log = verdict.bad_records
    report.verdict = {**asdict(verdict), "ok": verdict.ok}
    report.unexpected = list(client.unexpected)
    unread = [o.order_id for o in acknowledged if not o.read_back]
    if unread:
        report.unexpected.append(f"{len(unread)} acknowledged orders never read back: {unread[:5]}")
