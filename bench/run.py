"""`make bench`: every hot path measured side by side with its limit, in one run on one machine.

    .venv/bin/python -m bench.run [--smoke] [--events N] [--bootstrap HOST:PORT] [--out DIR]

1. ingest     the query service (a real process) folds N events over N/10 users from an empty
              state dir, against a bare confluent-kafka consumer reading and discarding the same
              N in batches; its progress sampled throughout: the last 30 % against the first;
6. hot users  N events over 20 users, on a fresh topic and state dir, against the ingest of 1;
5. restart    kill -9 once caught up, then time to ready; and the peak RSS during the ingest;
7. big user   one user with 100,000 orders: GET its items while the service ingests other users'
              events; in-process, one more event for it against one for a new user;
2. commands   POST /orders (acks=all), against the same app with no Kafka; then latency at half
              the maximum throughput, and one client's sequential latency;
4. queries    GET /users/{id}/items over 10,000 users, against a constant JSON of the same size;
3. ryw        at 200 orders/s: from the start of a POST until the GET with its token answers.

Writes DIR/latest.json (or smoke.json) and a chart beside it, and prints every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from confluent_kafka import Consumer

from bench import workload
from bench.harness import (
    Load,
    Progress,
    applied_events,
    follow_ingest,
    percentiles_ms,
    start_broker,
    start_process,
    wrk,
)
from devtools.environment import service_env
from devtools.processes import ServiceProcess
from kafka_local.broker import kafka_version
from query_service import statedir
from query_service.ingest import Ingest
from query_service.metrics import QueryMetrics
from query_service.partitioning import partition_for
from query_service.ports import DeadLetter
from query_service.runner import settle_heap
from query_service.store import RocksPartitionStores
from shared.kafka import consumer_config
from shared.settings import KafkaSettings

RESULTS = Path(__file__).parent / "results"
# Long enough for the query service to fold a million events before it reports ready.
READY_TIMEOUT_S = 600.0
HOT_USERS = 20
# The share of the ingest at each end whose rates are compared.
GROWTH_SHARE = 0.3
BIG_USER = workload.user_id(0, "big")
# The big user's page is read at this pace while the service ingests: a latency, not a maximum.
BIG_USER_READ_RATE = 200
BIG_USER_READ_CONNECTIONS = 4

TARGETS = {
    "ingest_ratio": (">=", 0.5),
    "commands_ratio": (">=", 0.7),
    "commands_half_load_p99_ms": ("<=", 20.0),
    "ryw_p50_ms": ("<=", 10.0),
    "ryw_p99_ms": ("<=", 50.0),
    "queries_ratio": (">=", 0.7),
    "restart_to_ready_s": ("<=", 5.0),
    "ingest_peak_rss_mb": ("<=", 500.0),
    "hot_users_ratio": (">=", 0.8),
    "ingest_late_vs_early_ratio": (">=", 0.9),
    "big_user_items_p99_ms": ("<=", 20.0),
    "big_user_items_body_bytes": ("<=", 64 * 1024),
    "big_user_event_cost_ratio": ("<=", 1.2),
}
MEANINGS = {
    "ingest_ratio": "the query service's ingest rate over the bare consumer's",
    "commands_ratio": "POST /orders with Kafka over the same app without",
    "commands_half_load_p99_ms": "POST /orders p99 at half the maximum throughput",
    "ryw_p50_ms": "from a POST's start until the GET with its token answers, median",
    "ryw_p99_ms": "the same, 99th percentile",
    "queries_ratio": "GET /users/{id}/items over a constant JSON of the same size",
    "restart_to_ready_s": "time to ready after kill -9 of a caught-up query service",
    "ingest_peak_rss_mb": "the query service's peak RSS during the ingest",
    "hot_users_ratio": "N events over 20 users against N over N/10 users, each from its first "
    "applied event until ready",
    "ingest_late_vs_early_ratio": "the ingest's rate over its last 30 % of events against its "
    "first 30 %: the target is no slower (to the +-0.1 a ratio reads to here)",
    "big_user_items_p99_ms": f"GET the items of a user with 100,000 orders at "
    f"{BIG_USER_READ_RATE}/s while other users' events are ingested, p99",
    "big_user_items_body_bytes": "the size of that answer (each group's first page of lines)",
    "big_user_event_cost_ratio": "one more event for that user against one for a new user, "
    "each applied as a batch of its own (medians)",
}


class Bench:
    def __init__(self, args: argparse.Namespace, stack: ExitStack, workdir: Path) -> None:
        self.args = args
        self.stack = stack
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True)
        self.bootstrap = start_broker(stack, workdir, args.bootstrap)
        self.results: dict[str, Any] = {}

    def settings(self, topic: str) -> KafkaSettings:
        return KafkaSettings(kafka_bootstrap_servers=self.bootstrap, orders_topic=topic)

    def state_dir(self, topic: str) -> Path:
        return self.workdir / f"state-{topic}"

    def env(self, topic: str) -> dict[str, str]:
        return service_env(self.bootstrap, self.state_dir(topic), topic)

    def query_service(self, name: str, env: dict[str, str]) -> ServiceProcess:
        return start_process(self.stack, "query_service", name, env, self.logs)

    def command_service(self, env: dict[str, str]) -> ServiceProcess:
        return start_process(self.stack, "command_service", "command", env, self.logs)

    # 1 and 5 ---------------------------------------------------------------------------------
    def ingest(self, name: str, values: Iterable[tuple[str, bytes]], label: str) -> Ingested:
        """A query service from an empty state dir through `values` on a fresh topic, followed
        until ready; stopped with the stack, or by the caller."""
        topic = f"bench-{name}-{uuid.uuid4().hex[:8]}"
        settings = self.settings(topic)
        ends = workload.produce(settings, values, label)
        events = sum(ends.values())
        env = self.env(topic)
        service = self.query_service(f"query-{name}", env)
        service.wait_http("/health/live", READY_TIMEOUT_S)
        # Every 50 ms: /health/ready is cheap, and the time to ready is the figure.
        progress = follow_ingest(service, READY_TIMEOUT_S, poll_s=0.05)
        return Ingested(settings, env, service, events, progress)

    def ingest_restart_memory(self) -> None:
        events = self.args.events
        uniform = workload.order_values(events, users=max(1, events // 10))
        run = self.ingest("ingest", uniform, f"{max(1, events // 10):,} users")
        bare_s = bare_consumer(run.settings, run.events)
        ingest_s = run.progress.ready_s
        peak_rss = run.service.peak_rss_mb()
        run.service.kill()
        restarted = self.query_service("query-restart", run.env)
        restart_s = restarted.wait_http("/health/ready", READY_TIMEOUT_S, poll_s=0.01)
        restarted.stop()
        early = run.progress.rate(1, GROWTH_SHARE * events)
        late = run.progress.rate((1 - GROWTH_SHARE) * events, events)
        self.results["ingest"] = {
            "events": events,
            "bare_consumer_events_per_s": round(events / bare_s),
            "query_service_events_per_s": round(events / ingest_s),
            "bare_consumer_s": round(bare_s, 2),
            "query_service_s": round(ingest_s, 2),
            "applying_events_per_s": round(run.progress.rate(1, events)),
            "early_events_per_s": round(early),
            "late_events_per_s": round(late),
            "progress": run.progress.curve(step_s=0.5),
        }
        self.results["ingest_ratio"] = round(bare_s / ingest_s, 3)
        self.results["ingest_late_vs_early_ratio"] = round(late / early, 3)
        self.results["ingest_peak_rss_mb"] = round(peak_rss, 1)
        self.results["restart_to_ready_s"] = round(restart_s, 2)

    # 6 ---------------------------------------------------------------------------------------
    def hot_users(self) -> None:
        events = self.args.events
        hot = workload.order_values(events, HOT_USERS, seed=8)
        run = self.ingest("hot", hot, f"{HOT_USERS} users")
        peak_rss = run.service.peak_rss_mb()
        run.service.stop()
        # From the first applied event: the start-up before it is not ingest.
        rate = run.progress.rate(1, events)
        self.results["hot_users"] = {
            "events": events,
            "users": HOT_USERS,
            "applying_events_per_s": round(rate),
            "query_service_s": round(run.progress.ready_s, 2),
            "peak_rss_mb": round(peak_rss, 1),
        }
        uniform = self.results["ingest"]["applying_events_per_s"]
        self.results["hot_users_ratio"] = round(rate / uniform, 3)

    # 7 ---------------------------------------------------------------------------------------
    def big_user(self) -> None:
        """The big user's orders interleaved with as many for 10 % as many other users; then
        three times as many for other users again, produced once it is ready and read during."""
        orders = self.args.big_user_orders
        values = workload.interleave(
            workload.order_values(orders, 1, seed=11, prefix="big"),
            workload.order_values(orders, max(1, orders // 10), seed=12, prefix="other"),
        )
        run = self.ingest("big", values, f"{orders:,} for {BIG_USER}, {orders:,} for others")
        query = run.service
        page = httpx.get(f"{query.url}/users/{BIG_USER}/items", timeout=10)
        page.raise_for_status()
        more = 3 * orders
        workload.produce(
            run.settings,
            workload.order_values(more, max(1, more // 3), seed=13, prefix="more"),
            "others, while the big user is read",
        )
        _, before = applied_events(query)
        started = time.perf_counter()
        reads = wrk(
            query,
            "get_user_items.lua",
            seconds=self.args.seconds,
            connections=BIG_USER_READ_CONNECTIONS,
            env={"BENCH_USER": BIG_USER, "BENCH_RATE": str(BIG_USER_READ_RATE)},
        )
        wall = time.perf_counter() - started
        _, after = applied_events(query)
        if reads.non_2xx or reads.socket_errors:
            raise RuntimeError(f"GET {BIG_USER}'s items failed under load: {reads}")
        query.stop()
        # The service's own stores, now that it has let go of them.
        topic = run.settings.orders_topic
        stores = RocksPartitionStores(statedir.current_version(self.state_dir(topic)), topic)
        try:
            cost = event_cost(
                stores, topic, run.settings.orders_topic_partitions, self.args.cost_samples
            )
        finally:
            stores.close()
        self.results["big_user"] = {
            "user": BIG_USER,
            "orders": orders,
            "items": {
                "body_bytes": len(page.content),
                "line_count": {g: v["line_count"] for g, v in page.json()["groups"].items()},
                "read_rate": BIG_USER_READ_RATE,
                **reads.as_dict(),
            },
            # What the service ingested while it was read: if it caught up before the end, the
            # last part of the reads ran without an ingest beside them.
            "ingested_during_reads": after - before,
            "ingest_events_per_s_during_reads": round((after - before) / wall),
            "caught_up_during_reads": after >= run.events + more,
            "event_cost": cost,
        }
        self.results["big_user_items_p99_ms"] = round(reads.p99_ms, 2)
        self.results["big_user_items_body_bytes"] = len(page.content)
        self.results["big_user_event_cost_ratio"] = round(cost["big_us"] / cost["new_us"], 3)

    # 2, 3 and 4 ------------------------------------------------------------------------------
    def http_paths(self) -> None:
        topic = f"bench-system-{uuid.uuid4().hex[:8]}"
        users = self.args.query_users
        settings = self.settings(topic)
        # Five orders a user: views of some size.
        workload.produce(settings, workload.order_values(users * 5, users), f"{users:,} users")
        env = self.env(topic)
        # Commands first, alone with the broker: the limit they are compared with has no query
        # service beside it either.
        command = self.command_service(env)
        command.wait_http("/health/ready", READY_TIMEOUT_S)
        self.commands(command)
        query = self.query_service("query", env)
        query.wait_http("/health/ready", READY_TIMEOUT_S)
        self.queries(query, users)
        self.results["ryw"] = asyncio.run(
            read_your_writes(command.url, query.url, rate=200, seconds=self.args.seconds)
        )
        self.results["ryw_p50_ms"] = self.results["ryw"]["p50_ms"]
        self.results["ryw_p99_ms"] = self.results["ryw"]["p99_ms"]

    def queries(self, query: ServiceProcess, users: int) -> None:
        sample = httpx.get(f"{query.url}/users/{workload.user_id(0)}/items", timeout=5).content
        body = self.workdir / "constant.json"
        body.write_bytes(sample)
        limit = start_process(
            self.stack, "bench.limits", "constant", {}, self.logs, ["constant", str(body)]
        )
        limit.wait_http("/health/ready", READY_TIMEOUT_S)
        env = {"BENCH_USERS": str(users)}
        real = wrk(query, "get_items.lua", seconds=self.args.seconds, connections=16, env=env)
        bare = wrk(limit, "get_items.lua", seconds=self.args.seconds, connections=16, env=env)
        limit.stop()
        self.results["queries"] = {
            "body_bytes": len(sample),
            "real": real.as_dict(),
            "limit": bare.as_dict(),
        }
        self.results["queries_ratio"] = round(real.requests_per_s / bare.requests_per_s, 3)

    def commands(self, command: ServiceProcess) -> None:
        limit = start_process(
            self.stack, "bench.limits", "command-limit", {}, self.logs, ["command"]
        )
        limit.wait_http("/health/ready", READY_TIMEOUT_S)
        seconds = self.args.seconds
        # Enough connections to saturate each: with 16 the Kafka path waits on acks, not CPU.
        real = wrk(command, "post_orders.lua", seconds=seconds, connections=64)
        bare = wrk(limit, "post_orders.lua", seconds=seconds, connections=64)
        limit.stop()
        half_rate = max(1, round(real.requests_per_s / 2))
        half = self.paced(command, half_rate)
        single = wrk(command, "post_orders.lua", seconds=seconds, connections=1)
        for run in (real, bare, half, single):
            if run.non_2xx or run.socket_errors:
                raise RuntimeError(f"POST /orders failed under load: {run}")
        self.results["commands"] = {
            "max_throughput": real.as_dict(),
            "limit_without_kafka": bare.as_dict(),
            "half_load": {"target_rate": half_rate, **half.as_dict()},
            "one_client_sequential": single.as_dict(),
        }
        self.results["commands_ratio"] = round(real.requests_per_s / bare.requests_per_s, 3)
        self.results["commands_half_load_p99_ms"] = round(half.p99_ms, 2)

    def paced(self, command: ServiceProcess, rate: int) -> Load:
        """POST /orders at about `rate`/s. wrk paces each connection by a delay after each answer,
        so the first run falls short by the latency; the second is corrected by what it missed."""
        seconds = self.args.seconds
        asked = rate
        for _ in range(2):
            run = wrk(
                command,
                "post_orders.lua",
                seconds=seconds,
                connections=8,
                env={"BENCH_RATE": str(asked)},
            )
            asked = min(2 * rate, round(asked * rate / max(run.requests_per_s, 1)))
        return run


@dataclass
class Ingested:
    settings: KafkaSettings
    env: dict[str, str]
    service: ServiceProcess
    events: int
    progress: Progress


@dataclass(frozen=True)
class Record:
    """A consumed record, with the methods of confluent_kafka's Message that Ingest calls."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes
    _value: bytes

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value


class NoDeadLetters:
    """The workload's events are all valid: a dead letter means the benchmark is wrong."""

    def send(self, letters: Sequence[DeadLetter]) -> None:
        raise RuntimeError(f"the benchmark's events were dead-lettered: {letters[:1]}")

    def close(self) -> None:
        pass


def event_cost(
    stores: RocksPartitionStores, topic: str, partitions: int, samples: int
) -> dict[str, Any]:
    """Median microseconds to apply one event as a batch of its own: a new order of the big
    user, against the first order of a new user, taken in turns on the same stores."""
    ingest = Ingest(stores, NoDeadLetters(), QueryMetrics())
    next_offset = {p: ingest.take(p) + 1 for p in range(partitions)}
    owned = set(range(partitions))

    def record(key: str, value: bytes) -> Record:
        partition = partition_for(key, partitions)
        offset = next_offset[partition]
        next_offset[partition] += 1
        return Record(topic, partition, offset, key.encode(), value)

    big = workload.order_values(samples, 1, seed=21, prefix="big")
    new = workload.order_values(samples, samples, seed=22, prefix="new")
    timings: dict[str, list[float]] = {"big": [], "new": []}
    thresholds = gc.get_threshold()
    settle_heap()  # the garbage collector as the service runs it
    try:
        for i, pair in enumerate(zip(big, new, strict=True)):
            turns = zip(("big", "new"), pair, strict=True)
            for name, (key, value) in turns if i % 2 else reversed(list(turns)):
                message = record(key, value)
                started = time.perf_counter()
                ingest.process([message], owned)
                timings[name].append(time.perf_counter() - started)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    return {
        "samples": samples,
        "big_us": round(statistics.median(timings["big"]) * 1e6, 1),
        "new_us": round(statistics.median(timings["new"]) * 1e6, 1),
        "big_p90_us": round(statistics.quantiles(timings["big"], n=10)[8] * 1e6, 1),
        "new_p90_us": round(statistics.quantiles(timings["new"], n=10)[8] * 1e6, 1),
    }


def bare_consumer(settings: KafkaSettings, total: int) -> float:
    """Seconds for a plain consumer to read `total` records in batches and discard them."""
    config = consumer_config(settings, "bench-bare", f"bare-{uuid.uuid4().hex[:8]}")
    consumer = Consumer(config)
    consumer.subscribe([settings.orders_topic])
    seen = 0
    started = time.perf_counter()
    while seen < total:
        for message in consumer.consume(num_messages=5000, timeout=0.5):
            if message.error() is None:
                message.value()
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


async def read_your_writes(
    command_url: str, query_url: str, rate: int, seconds: float
) -> dict[str, Any]:
    """Open loop at `rate` orders/s: each one POSTs, then GETs its user's items with the token.

    aiohttp rather than httpx: on these machines httpx spent ~1.8 ms of CPU per request, which
    made the generator, not the system, the bottleneck at 400 requests/s.
    """
    latencies: list[float] = []
    failures: list[str] = []
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(i: int) -> None:
            user = f"ryw-{i % 500}"
            order = {
                "user_id": user,
                "items": [
                    {
                        "sku": f"R-{i}",
                        "name": "Read your write",
                        "unit_price": "7.50",
                        "quantity": 1,
                    }
                ],
            }
            started = time.perf_counter()
            async with http.post(f"{command_url}/orders", json=order) as placed:
                await placed.read()
                token = placed.headers.get("X-Consistency-Token", "")
            params = {"consistency_token": token, "wait_ms": "5000"}
            async with http.get(f"{query_url}/users/{user}/items", params=params) as view:
                await view.read()
            if placed.status != 201 or view.status != 200:
                failures.append(f"{placed.status}/{view.status}")
                return
            latencies.append(time.perf_counter() - started)

        for warmup in range(20):
            await one(-1 - warmup)
        latencies.clear()
        count = max(1, round(rate * seconds))
        start = time.perf_counter()
        cpu_start = time.process_time()
        tasks = []
        for i in range(count):
            # Open loop: each order starts on its schedule, whether or not earlier ones finished.
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
    if failures:
        raise RuntimeError(f"read-your-writes requests failed: {failures[:5]}")
    return {
        "rate": rate,
        "achieved_rate": round(count / wall, 1),
        "generator_cpu": round(cpu / wall, 3),
        **percentiles_ms(latencies),
    }


def verdicts(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    table = {}
    for name, (op, target) in TARGETS.items():
        value = results[name]
        met = value >= target if op == ">=" else value <= target
        table[name] = {"value": value, "target": f"{op} {target:g}", "met": met}
    return table


def figures_markdown(results: dict[str, Any], chart: Path) -> str:
    machine = results["machine"]
    rows = [
        f"| {name.replace('_', ' ')} | {v['value']} | {v['target']} | "
        f"{'met' if v['met'] else '**missed**'} | {MEANINGS[name]} |"
        for name, v in results["targets"].items()
    ]
    ingest, commands = results["ingest"], results["commands"]
    hot, big = results["hot_users"], results["big_user"]
    big_items = big["items"]
    return "\n".join(
        [
            f"Measured {machine['date']} on {machine['platform']}, {machine['cpus']} CPUs, "
            f"Python {machine['python']}, Kafka {machine['kafka']} ({machine['broker']}); "
            f"the run took {machine['wall_s']} s.",
            "",
            "| figure | measured | target | | what it is |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"- Ingest: the query service {ingest['query_service_events_per_s']:,} events/s, "
            f"the bare consumer {ingest['bare_consumer_events_per_s']:,} events/s, "
            f"over {ingest['events']:,} events; {ingest['early_events_per_s']:,} events/s over "
            f"the first 30 % of them, {ingest['late_events_per_s']:,} over the last 30 %.",
            f"- Hot users: {hot['applying_events_per_s']:,} events/s over {hot['events']:,} "
            f"events for {hot['users']} users, against {ingest['applying_events_per_s']:,} "
            f"for {ingest['events'] // 10:,} users, each from its first applied event (peak RSS "
            f"{hot['peak_rss_mb']} MB).",
            f"- A user with {big['orders']:,} orders: its items page ({big_items['body_bytes']:,} "
            f"bytes) at {big_items['requests_per_s']:.0f} GETs/s, p50 {big_items['p50_ms']} ms, "
            f"p99 {big_items['p99_ms']} ms, while the service applied "
            f"{big['ingest_events_per_s_during_reads']:,} events/s of other users'. One more "
            f"event for it took {big['event_cost']['big_us']} us, one for a new user "
            f"{big['event_cost']['new_us']} us (medians of {big['event_cost']['samples']:,} "
            "single-event batches each).",
            f"- Commands: {commands['max_throughput']['requests_per_s']:.0f} orders/s with Kafka "
            f"against {commands['limit_without_kafka']['requests_per_s']:.0f}/s without; at half "
            f"load ({commands['half_load']['requests_per_s']:.0f}/s) p50 "
            f"{commands['half_load']['p50_ms']} ms, p99 {commands['half_load']['p99_ms']} ms; one "
            f"sequential client p50 {commands['one_client_sequential']['p50_ms']} ms, p99 "
            f"{commands['one_client_sequential']['p99_ms']} ms. wrk used "
            f"{commands['max_throughput']['generator_cpu']:.0%} of a core at full load.",
            f"- Queries: {results['queries']['real']['requests_per_s']:.0f} GETs/s against "
            f"{results['queries']['limit']['requests_per_s']:.0f}/s for a constant body of "
            f"{results['queries']['body_bytes']} bytes.",
            f"- Read-your-writes at {results['ryw']['achieved_rate']} orders/s: "
            f"p50 {results['ryw']['p50_ms']} ms, p99 {results['ryw']['p99_ms']} ms "
            f"(the client used {results['ryw']['generator_cpu']:.0%} of a core).",
            "",
            f"![benchmark chart](bench/results/{chart.name})",
        ]
    )


def publish(results: dict[str, Any], chart: Path) -> None:
    """Rewrite the figures section of BENCHMARKS.md, so that it always shows the latest run."""
    doc = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
    start, end = "<!-- figures:start -->", "<!-- figures:end -->"
    text = doc.read_text()
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    doc.write_text(f"{head}{start}\n{figures_markdown(results, chart)}\n{end}{tail}")


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("librdkafka").setLevel(logging.ERROR)  # start-up retries are expected
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness")
    parser.add_argument("--events", type=int)
    parser.add_argument("--query-users", type=int)
    parser.add_argument("--big-user-orders", type=int)
    parser.add_argument("--cost-samples", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.events = args.events or (2_000 if args.smoke else 1_000_000)
    args.query_users = args.query_users or (200 if args.smoke else 10_000)
    args.big_user_orders = args.big_user_orders or (1_000 if args.smoke else 100_000)
    args.cost_samples = args.cost_samples or (100 if args.smoke else 2_000)
    args.seconds = args.seconds or (1.0 if args.smoke else 10.0)
    started = time.perf_counter()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        bench = Bench(args, stack, workdir)
        print(f"1+5. ingest {args.events:,} events, restart, memory", flush=True)
        bench.ingest_restart_memory()
        print(f"6. hot users: {args.events:,} events over {HOT_USERS} users", flush=True)
        bench.hot_users()
        print(f"7. a user with {args.big_user_orders:,} orders", flush=True)
        bench.big_user()
        print("2-4. queries, commands, read-your-writes", flush=True)
        bench.http_paths()
        results = bench.results
    results["targets"] = verdicts(results)
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka": kafka_version(),
        "broker": "given" if args.bootstrap else "local, started by the benchmark",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    name = "smoke" if args.smoke else "latest"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    from bench.chart import draw

    draw(results, args.out / f"{name}.png")
    if args.smoke:
        # Not published, but written, so that the smoke run exercises it.
        (args.out / "smoke.md").write_text(figures_markdown(results, args.out / "smoke.png"))
    else:
        publish(results, args.out / f"{name}.png")
    for key, verdict in results["targets"].items():
        mark = "ok  " if verdict["met"] else "MISS"
        print(f"{mark} {key:28} {verdict['value']:>10} (target {verdict['target']})")
    print(f"wrote {args.out / f'{name}.json'} and {name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
