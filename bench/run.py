"""`make bench`: every hot path measured side by side with its limit, in one run on one machine.

    .venv/bin/python -m bench.run [--smoke] [--events N] [--bootstrap HOST:PORT] [--out DIR]
                                  [--only SECTION ...]   (ingest hot lz4 big http streams handoff)

1. ingest     the query service (a real process) folds N events over N/10 users from an empty
              state dir, against a bare confluent-kafka consumer reading and discarding the same
              N in batches; its progress sampled throughout: the last 30 % against the first;
6. hot users  N events over 20 users, on a fresh topic and state dir, against the ingest of 1;
11. lz4       the ingest of 1 again on a topic whose batches are lz4-compressed, against the bare
              consumer on that topic; with --only lz4 --events 5000000, the growth over a longer
              history;
5. restart    kill -9 once caught up, then time to ready; and the peak RSS during the ingest;
8. scale-out  a second instance joining the restarted one: time until it serves its half; then
              the same N folded by two instances from empty state dirs against the one of 1;
7. big user   one user with 100,000 orders: GET its items while the service ingests other users'
              events; in-process, one more event for it against one for a new user;
2. commands   POST /orders (acks=all), against the same app with no Kafka; then latency at half
              the maximum throughput, and one client's sequential latency;
4. queries    GET /users/{id}/items over 10,000 users, against a constant JSON of the same size:
              with the page cache, without it, and with If-None-Match (all 304);
3. ryw        at 200 orders/s: from the start of a POST until the GET with its token answers;
9. forwarding two instances: GETs through one of them for users it holds against users it
              forwards; then a third joins and ryw is measured with each GET to a random one;
10. streams   5,000 items streams on one instance while orders come for their users at 200/s:
              from each POST's 201 to its delta (bench/streams.py);
12. hand-off  N events, one caught-up instance, then one added: its time to ready with its
              partitions handed over as checkpoints against replayed from the log, and the bytes
              moved (bench/handoff.py); --only handoff --events 5000000 for the larger history.
13. tracing   N/5 events with a traceparent each folded with tracing off, every trace sampled,
              1 in 100 sampled; POST /orders at full speed the same three ways (bench/tracing.py).

Writes DIR/latest.json (or smoke.json) and a chart beside it, and prints every figure. A full
run (N = 1,000,000) takes about 10-12 minutes on 2 cores; --smoke about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer

from bench import cluster, flood, handoff, streams, workload
from bench.event_cost import event_cost
from bench.harness import (
    Load,
    Progress,
    applied_events,
    follow_ingest,
    start_broker,
    start_process,
    wrk,
)
from bench.read_your_writes import read_your_writes
from bench.tracing import LOW_RATIO, MODES, traceparents, tracing_env
from devtools.environment import service_env
from devtools.otlp import OtlpReceiver
from devtools.processes import ServiceProcess
from kafka_local.broker import kafka_version
from query_service.store import statedir
from query_service.store.rocks import RocksPartitionStores
from shared.kafka import consumer_config, topic_id
from shared.settings import KafkaSettings

RESULTS = Path(__file__).parent / "results"
# Long enough for the query service to fold a million events before it reports ready.
READY_TIMEOUT_S = 600.0
HOT_USERS = 20
# The share of the ingest at each end whose rates are compared.
GROWTH_SHARE = 0.3
BIG_USER = workload.user_id(0, "big")
# Reads: connections of the load generator, and users whose ETags the conditional reads send.
QUERY_CONNECTIONS = 16
NOT_MODIFIED_USERS = 2_000
# What `--only` can choose from, in the order a full run takes them.
SECTIONS = ["ingest", "hot", "lz4", "mixed", "big", "http", "streams", "handoff", "tracing"]
# The big user's page is read at this pace while the service ingests: a latency, not a maximum.
BIG_USER_READ_RATE = 200
BIG_USER_READ_CONNECTIONS = 4

TARGETS = {
    "ingest_ratio": (">=", 0.5),
    "commands_ratio": (">=", 0.7),
    "commands_half_load_p99_ms": ("<=", 20.0),
    "ryw_p50_ms": ("<=", 10.0),
    "ryw_p99_ms": ("<=", 50.0),
    "queries_ratio": (">=", 1.0),
    "not_modified_ratio": (">=", 1.5),
    "restart_to_ready_s": ("<=", 5.0),
    "ingest_peak_rss_mb": ("<=", 500.0),
    "hot_users_ratio": (">=", 1.0),
    "ingest_lz4_ratio": (">=", 0.5),
    "ingest_lz4_late_vs_early_ratio": (">=", 0.9),
    "ingest_mixed_ratio": (">=", 0.5),
    "ingest_late_vs_early_ratio": (">=", 0.9),
    "big_user_items_p99_ms": ("<=", 20.0),
    "big_user_items_body_bytes": ("<=", 64 * 1024),
    "big_user_event_cost_ratio": ("<=", 1.2),
    "forwarding_added_p50_ms": ("<=", 0.5),
    "forwarding_added_p99_ms": ("<=", 2.0),
    "ryw_3_instances_p99_ms": ("<=", 50.0),
    "streams_delta_p99_ms": ("<=", 100.0),
    "flood_probe_p99_ratio": ("<=", 3.0),
    "handoff_ready_s": ("<=", 10.0),
    "handoff_speedup": (">=", 10.0),
    "handoff_serving_ingest_ratio": (">=", 0.8),
}
MEANINGS = {
    "ingest_ratio": "the query service's ingest rate over the bare consumer's",
    "commands_ratio": "POST /orders with Kafka over the same app without",
    "commands_half_load_p99_ms": "POST /orders p99 at half the maximum throughput",
    "ryw_p50_ms": "from a POST's start until the GET with its token answers, median",
    "ryw_p99_ms": "the same, 99th percentile",
    "queries_ratio": "GET /users/{id}/items over a constant JSON of the same size (16 "
    "connections, random users of 10,000, page cache on as by default)",
    "queries_uncached_ratio": "the same against an instance with QUERY_PAGE_CACHE_MB=0: every "
    "read reads RocksDB and encodes",
    "not_modified_ratio": "GET /users/{id}/items with If-None-Match of the current ETag (all "
    "answered 304) over the constant JSON endpoint",
    "restart_to_ready_s": "time to ready after kill -9 of a caught-up query service",
    "ingest_peak_rss_mb": "the query service's peak RSS during the ingest",
    "hot_users_ratio": "N events over 20 users against N over N/10 users, each from its first "
    "applied event until ready",
    "ingest_late_vs_early_ratio": "the ingest's rate over its last 30 % of events against its "
    "first 30 %: the target is no slower (to the +-0.1 a ratio reads to here)",
    "ingest_lz4_ratio": "the same ingest ratio on a topic whose batches are lz4-compressed "
    "(query service and bare consumer both on it)",
    "ingest_lz4_late_vs_early_ratio": "that ingest's last 30 % against its first 30 %",
    "ingest_mixed_ratio": "the same ingest ratio on a log of OrderPlaced v1 and v2 events "
    "interleaved one for one (an upgrade's log)",
    "big_user_items_p99_ms": f"GET the items of a user with 100,000 orders at "
    f"{BIG_USER_READ_RATE}/s while other users' events are ingested, p99",
    "big_user_items_body_bytes": "the size of that answer (each group's first page of lines)",
    "big_user_event_cost_ratio": "one more event for that user against one for a new user, "
    "each applied as a batch of its own (medians)",
    "local_get_p50_ms": f"GET /users/{{id}}/items at {cluster.FORWARD_READ_RATE}/s through one of "
    "two instances, users whose partition it holds, median",
    "local_get_p99_ms": "the same, 99th percentile",
    "forwarded_get_p50_ms": "the same through the same instance for users whose partition only "
    "the other holds (forwarded once), median",
    "forwarded_get_p99_ms": "the same, 99th percentile",
    "forwarding_added_p50_ms": "forwarded GET p50 minus local GET p50: what a forward adds",
    "forwarding_added_p99_ms": "forwarded GET p99 minus local GET p99",
    "ingest_1_instance_events_per_s": "the N events over one instance: events per second from "
    "its launch until ready",
    "ingest_2_instances_events_per_s": "the same N over two instances (QUERY_REPLICAS=1, half "
    "the partitions each): from their launch until both are ready",
    "cpu_s_per_1000_events_1": "CPU seconds per 1,000 events of that one instance, start-up "
    "included",
    "cpu_s_per_1000_events_2": "the same summed over the two instances",
    "new_instance_ready_s": "an instance added to one caught up on the N events: from its launch "
    "until ready, its half of the partitions built from the log",
    "ryw_3_instances_p50_ms": "read-your-writes at 200 orders/s, each GET to one of three "
    "instances at random (QUERY_REPLICAS=1: ~2/3 forwarded), median",
    "ryw_3_instances_p99_ms": "the same, 99th percentile",
    "streams_delta_p50_ms": f"{streams.STREAMS:,} items streams (distinct users) on one instance "
    f"and {streams.RATE} orders/s for them: from the POST's 201 to the delta on its user's "
    "stream, median",
    "streams_delta_p99_ms": "the same, 99th percentile",
    "streams_rss_mb": "that instance's RSS with the streams open, at the end of the orders",
    "flood_probe_p99_ms": f"one user's GET of its items every 10 ms on the API port while "
    f"{flood.WAITERS:,} read-your-writes waiters and {flood.STREAMS} streams arrive, p99",
    "flood_bare_probe_p99_ms": "the same against a bare uvicorn app (no framework) that holds "
    "every waiter for its wait and every stream",
    "flood_probe_p99_ratio": "the first over the second: a small multiple of a bare app's",
    "handoff_ready_s": "an instance added beside one caught up on N events (uniform users, 6 "
    "partitions): from its launch until ready, its partitions handed over as checkpoints",
    "handoff_replay_ready_s": "the same instance, same partitions, without the cluster secret: "
    "replayed from the log",
    "handoff_speedup": "the replay's time over the hand-off's",
    "handoff_bytes": "checkpoint bytes the added instance received",
    "handoff_serving_ingest_ratio": "a caught-up instance's ingest of new events while a "
    "checkpoint of each of its partitions is fetched, over the same as long again without",
    "tracing_ingest_all_vs_off": "N/5 events, each with a traceparent, folded by a query service "
    "with tracing on and every trace sampled, against tracing off (applying rates)",
    "tracing_ingest_low_vs_off": "the same with 1 in 100 traces sampled",
    "tracing_commands_all_vs_off": "POST /orders at full speed (wrk, 64 connections) with every "
    "request traced, against tracing off",
    "tracing_commands_low_vs_off": "the same with 1 in 100 traced",
}

# The benchmarks measure the services' own paths without authentication (no tokens to mint for
# wrk) and without the per-user order limit (a few users place thousands of orders).
UNLIMITED = {"AUTH_DISABLED": "true", "ORDERS_PER_MINUTE": "1000000"}


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
        return {**service_env(self.bootstrap, self.state_dir(topic), topic), **UNLIMITED}

    def query_service(self, name: str, env: dict[str, str]) -> ServiceProcess:
        return start_process(self.stack, "query_service", name, env, self.logs)

    def command_service(self, env: dict[str, str]) -> ServiceProcess:
        return start_process(self.stack, "command_service", "command", env, self.logs)

    def instance(self, name: str, env: Mapping[str, str]) -> ServiceProcess:
        """One query instance of a cluster, named by its QUERY_INSTANCE_ID."""
        return start_process(self.stack, "query_service", f"query-{name}", env, self.logs)

    def instance_env(
        self, base: Mapping[str, str], instance_id: str, replicas: int, members: str
    ) -> dict[str, str]:
        state = self.workdir / f"state-{instance_id}-{uuid.uuid4().hex[:6]}"
        return cluster.instance_env(base, state, instance_id, replicas, members)

    # 1 and 5 ---------------------------------------------------------------------------------
    def ingest(
        self,
        name: str,
        values: Iterable[tuple[str, bytes]],
        label: str,
        compression: str = "none",
        *,
        traceparents: Iterator[bytes] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> Ingested:
        """A query service from an empty state dir through `values` on a fresh topic, followed
        until ready; stopped with the stack, or by the caller."""
        topic = f"bench-{name}-{uuid.uuid4().hex[:8]}"
        settings = self.settings(topic)
        ends = workload.produce(settings, values, label, compression, traceparents)
        events = sum(ends.values())
        env = {**self.env(topic), **(extra_env or {})}
        launched = time.perf_counter()
        service = self.query_service(f"query-{name}", env)
        service.wait_http("/health/live", READY_TIMEOUT_S)
        # Every 50 ms: /health/ready is cheap, and the time to ready is the figure.
        progress = follow_ingest(service, READY_TIMEOUT_S, poll_s=0.05)
        from_launch_s = time.perf_counter() - launched
        return Ingested(
            settings, env, service, events, progress, from_launch_s, service.cpu_seconds()
        )

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
        self.added_instance(run, restarted)
        self.ingest_by_two(run)
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

    # 8 ---------------------------------------------------------------------------------------
    def added_instance(self, run: Ingested, running: ServiceProcess) -> None:
        """A second instance (R=1) joins `running`, caught up on the topic with its state."""
        partitions = run.settings.orders_topic_partitions
        running_id = httpx.get(f"{running.url}/health/ready", timeout=5).json()["instance_id"]
        (added_id,) = cluster.balanced_ids("added", 1, partitions, 1, taken=[running_id])
        members = run.env.get("QUERY_MEMBERS_TOPIC") or f"{run.settings.orders_topic}.members"
        env = self.instance_env(run.env, added_id, 1, members)
        ready_s, folded, added = cluster.new_instance_ready(self.instance, env, READY_TIMEOUT_S)
        _, held = cluster.held_partitions(added)
        added.stop()
        running.stop()
        self.results["new_instance"] = {
            "replicas": 1,
            "partitions_held": sorted(held),
            "events_folded": folded,
            "ready_s": round(ready_s, 2),
        }
        self.results["new_instance_ready_s"] = round(ready_s, 2)

    def ingest_by_two(self, run: Ingested) -> None:
        """The ingest's topic folded again by two instances (R=1) from empty state dirs, as a
        cluster of their own."""
        partitions = run.settings.orders_topic_partitions
        members = f"{run.settings.orders_topic}.members2"
        ids = cluster.balanced_ids("ingest", 2, partitions, 1)
        envs = [self.instance_env(run.env, i, 1, members) for i in ids]
        two, instances = cluster.ingest_together(
            self.instance, envs, partitions, 1, READY_TIMEOUT_S
        )
        for instance in instances:
            instance.stop()
        events = run.events
        self.results["ingest_by_instances"] = {
            "events": events,
            "one": {"seconds": round(run.from_launch_s, 2), "cpu_s": round(run.cpu_s, 2)},
            "two": {"seconds": round(two.seconds, 2), "cpu_s": round(two.cpu_s, 2)},
        }
        self.results["ingest_1_instance_events_per_s"] = round(events / run.from_launch_s)
        self.results["ingest_2_instances_events_per_s"] = round(events / two.seconds)
        self.results["cpu_s_per_1000_events_1"] = round(1000 * run.cpu_s / events, 4)
        self.results["cpu_s_per_1000_events_2"] = round(1000 * two.cpu_s / events, 4)

    # 13 --------------------------------------------------------------------------------------
    def tracing_cost(self) -> None:
        """Tracing off, every trace sampled, 1 in 100: the ingest of the same events and POST
        /orders at full speed (bench/tracing.py)."""
        events = max(1, self.args.events // 5)
        users = max(1, events // 10)
        sink = OtlpReceiver(keep_spans=False)
        self.stack.callback(sink.close)
        ingest: dict[str, int] = {}
        for mode in MODES:
            values = workload.order_values(events, users=users, seed=21)
            sampled = LOW_RATIO if mode == "low" else 1.0
            run = self.ingest(
                f"traced-{mode}",
                values,
                f"{users:,} users, each with a traceparent",
                traceparents=traceparents(sampled, seed=22),
                extra_env=tracing_env(sink, mode),
            )
            run.service.stop()
            ingest[mode] = round(run.progress.rate(1, events))
        commands: dict[str, int] = {}
        p99: dict[str, float] = {}
        refused: dict[str, int] = {}
        topic = f"bench-traced-commands-{uuid.uuid4().hex[:8]}"
        for mode in MODES:
            command = start_process(
                self.stack,
                "command_service",
                f"command-traced-{mode}",
                {**self.env(topic), **tracing_env(sink, mode)},
                self.logs,
            )
            command.wait_http("/health/ready", READY_TIMEOUT_S)
            load = wrk(command, "post_orders.lua", seconds=self.args.seconds, connections=64)
            command.stop()
            # A 503 (an acknowledgement later than ORDER_ACK_TIMEOUT_MS on a loaded machine) is
            # reported beside the rate, not a reason to lose the run's other figures.
            if load.socket_errors or load.non_2xx > load.requests / 100:
                raise RuntimeError(f"POST /orders failed with tracing {mode}: {load}")
            refused[mode] = load.non_2xx
            commands[mode] = round(load.requests_per_s)
            p99[mode] = round(load.p99_ms, 2)
        self.results["tracing"] = {
            "events": events,
            "ingest_events_per_s": ingest,
            "commands_per_s": commands,
            "commands_p99_ms": p99,
            "commands_non_2xx": refused,
            "span_bytes": sink.bytes,
            "span_exports": sink.exports,
        }
        for mode in ("all", "low"):
            self.results[f"tracing_ingest_{mode}_vs_off"] = round(ingest[mode] / ingest["off"], 3)
            self.results[f"tracing_commands_{mode}_vs_off"] = round(
                commands[mode] / commands["off"], 3
            )

    # 12 --------------------------------------------------------------------------------------
    def handoff(self) -> None:
        events = self.args.events
        topic = f"bench-handoff-{uuid.uuid4().hex[:8]}"
        settings = self.settings(topic)
        users = max(1, events // 10)
        workload.produce(settings, workload.order_values(events, users), f"{users:,} users")
        seeds = iter(range(100, 200))

        def produce(count: int) -> None:
            # More orders of the same users, as a running shop's.
            values = workload.order_values(count, users, seed=next(seeds))
            workload.produce(settings, values, f"{count:,} more")

        found = handoff.measure(
            self.instance,
            self.env(topic),
            self.workdir,
            events,
            settings.orders_topic_partitions,
            # The serving instance folds all N first: 5M events take it past the 1M bound.
            READY_TIMEOUT_S * max(1.0, events / 1_000_000),
            produce,
            smoke=self.args.smoke,
        )
        self.results["handoff"] = found
        self.results["handoff_ready_s"] = found["handoff"]["ready_s"]
        self.results["handoff_replay_ready_s"] = found["replay"]["ready_s"]
        self.results["handoff_speedup"] = found["speedup"]
        self.results["handoff_bytes"] = found["handoff"]["bytes"]
        self.results["handoff_serving_ingest_ratio"] = found["serving"]["ratio"]

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

    # 11 --------------------------------------------------------------------------------------
    def lz4(self) -> None:
        """The uniform workload again, its batches lz4-compressed by the producer."""
        events = self.args.events
        uniform = workload.order_values(events, users=max(1, events // 10))
        run = self.ingest("lz4", uniform, f"{max(1, events // 10):,} users, lz4", "lz4")
        peak_rss = run.service.peak_rss_mb()
        run.service.stop()
        bare_s = bare_consumer(run.settings, run.events)
        early = run.progress.rate(1, GROWTH_SHARE * events)
        late = run.progress.rate((1 - GROWTH_SHARE) * events, events)
        self.results["ingest_lz4"] = {
            "events": events,
            "compression": "lz4",
            "bare_consumer_events_per_s": round(events / bare_s),
            "query_service_events_per_s": round(events / run.progress.ready_s),
            "early_events_per_s": round(early),
            "late_events_per_s": round(late),
            "cpu_us_per_event": round(1e6 * run.cpu_s / events, 1),
            "peak_rss_mb": round(peak_rss, 1),
        }
        self.results["ingest_lz4_ratio"] = round(bare_s / run.progress.ready_s, 3)
        self.results["ingest_lz4_late_vs_early_ratio"] = round(late / early, 3)

    # 14 --------------------------------------------------------------------------------------
    def mixed_versions(self) -> None:
        """The uniform workload with every other event written as OrderPlaced v2."""
        events = self.args.events
        users = max(1, events // 10)
        mixed = workload.interleave(
            workload.order_values(events // 2, users, version=1),
            workload.order_values(events - events // 2, users, seed=17, version=2),
        )
        run = self.ingest("mixed", mixed, f"{users:,} users, v1 and v2")
        run.service.stop()
        bare_s = bare_consumer(run.settings, run.events)
        self.results["ingest_mixed"] = {
            "events": events,
            "versions": {"1": events // 2, "2": events - events // 2},
            "bare_consumer_events_per_s": round(events / bare_s),
            "query_service_events_per_s": round(events / run.progress.ready_s),
            "cpu_us_per_event": round(1e6 * run.cpu_s / events, 1),
        }
        self.results["ingest_mixed_ratio"] = round(bare_s / run.progress.ready_s, 3)

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
                stores,
                topic,
                topic_id(run.settings, topic),
                run.settings.orders_topic_partitions,
                self.args.cost_samples,
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
        # A second instance of its own (its own cluster), without the page cache.
        uncached = self.query_service(
            "query-uncached",
            {
                **self.instance_env(env, "uncached", 1, f"{topic}.members-uncached"),
                "QUERY_PAGE_CACHE_MB": "0",
                "QUERY_CONSUMER_GROUP": f"{topic}-uncached",
            },
        )
        query.wait_http("/health/ready", READY_TIMEOUT_S)
        uncached.wait_http("/health/ready", READY_TIMEOUT_S)
        self.queries(query, uncached, users)
        uncached.stop()
        self.flood(query, users, self.settings(topic).orders_topic_partitions)
        self.results["ryw"] = asyncio.run(
            read_your_writes(command.url, [query.url], rate=200, seconds=self.args.seconds)
        )
        self.results["ryw_p50_ms"] = self.results["ryw"]["p50_ms"]
        self.results["ryw_p99_ms"] = self.results["ryw"]["p99_ms"]
        query.stop()
        self.forwarding(command, env, topic, users)

    # 9 ---------------------------------------------------------------------------------------
    def forwarding(
        self, command: ServiceProcess, env: dict[str, str], topic: str, users: int
    ) -> None:
        """Two instances (R=1) on the queries' topic: local against forwarded GETs through one;
        then a third joins, and read-your-writes goes through a random one of the three."""
        partitions = self.settings(topic).orders_topic_partitions
        members = f"{topic}.members-fwd"
        ids = cluster.balanced_ids("fwd", 2, partitions, 1)
        pair = [self.instance(i, self.instance_env(env, i, 1, members)) for i in ids]
        cluster.wait_settled(pair, partitions, 1, READY_TIMEOUT_S)
        found = cluster.forwarding_cost(
            pair[0],
            ids[0],
            [workload.user_id(i) for i in range(users)],
            partitions,
            self.args.seconds,
            self.workdir,
        )
        self.results["forwarding"] = found
        local, forwarded = found["local"], found["forwarded"]
        self.results["local_get_p50_ms"] = local["p50_ms"]
        self.results["local_get_p99_ms"] = local["p99_ms"]
        self.results["forwarded_get_p50_ms"] = forwarded["p50_ms"]
        self.results["forwarded_get_p99_ms"] = forwarded["p99_ms"]
        self.results["forwarding_added_p50_ms"] = round(forwarded["p50_ms"] - local["p50_ms"], 3)
        self.results["forwarding_added_p99_ms"] = round(forwarded["p99_ms"] - local["p99_ms"], 3)
        (third,) = cluster.balanced_ids("fwd-third", 1, partitions, 1, taken=ids)
        trio = [*pair, self.instance(third, self.instance_env(env, third, 1, members))]
        cluster.wait_settled(trio, partitions, 1, READY_TIMEOUT_S)
        ryw = asyncio.run(
            read_your_writes(
                command.url, [q.url for q in trio], rate=200, seconds=self.args.seconds
            )
        )
        for instance in trio:
            instance.stop()
        self.results["ryw_3_instances"] = ryw
        self.results["ryw_3_instances_p50_ms"] = ryw["p50_ms"]
        self.results["ryw_3_instances_p99_ms"] = ryw["p99_ms"]

    def queries(self, query: ServiceProcess, uncached: ServiceProcess, users: int) -> None:
        """Reads against a constant answer of the same size, all in one stretch: the default
        instance (page cache on), one without the page cache, and conditional reads (304)."""
        sample = httpx.get(f"{query.url}/users/{workload.user_id(0)}/items", timeout=5).content
        body = self.workdir / "constant.json"
        body.write_bytes(sample)
        limit = start_process(
            self.stack, "bench.limits", "constant", {}, self.logs, ["constant", str(body)]
        )
        limit.wait_http("/health/ready", READY_TIMEOUT_S)
        tags = self.workdir / "etags.txt"
        tags.write_text(etags(query, NOT_MODIFIED_USERS))
        env = {"BENCH_USERS": str(users), "BENCH_ETAGS": str(tags)}
        seconds, connections = self.args.seconds, QUERY_CONNECTIONS
        runs = {}
        for name, server, script in (
            ("real", query, "get_items.lua"),
            ("uncached", uncached, "get_items.lua"),
            ("not_modified", query, "get_items_304.lua"),
            ("limit", limit, "get_items.lua"),
        ):
            before = answered(server, 304) if name == "not_modified" else 0.0
            runs[name] = wrk(server, script, seconds=seconds, connections=connections, env=env)
            if name == "not_modified" and answered(server, 304) - before < runs[name].requests:
                raise RuntimeError("the conditional reads were not all answered 304")
        limit.stop()
        for run in runs.values():
            if run.non_2xx or run.socket_errors:
                raise RuntimeError(f"GET failed under load: {run}")
        bare = runs["limit"].requests_per_s
        self.results["queries"] = {
            "body_bytes": len(sample),
            **{name: run.as_dict() for name, run in runs.items()},
        }
        self.results["queries_ratio"] = round(runs["real"].requests_per_s / bare, 3)
        self.results["queries_uncached_ratio"] = round(runs["uncached"].requests_per_s / bare, 3)
        self.results["not_modified_ratio"] = round(runs["not_modified"].requests_per_s / bare, 3)

    def flood(self, query: ServiceProcess, users: int, partitions: int) -> None:
        """One user's reads every 10 ms on the API port while 5,000 waiters and 500 streams
        arrive, against the same on a bare uvicorn app (bench.limits `flood`)."""
        body = self.workdir / "constant.json"  # written by `queries`
        bare = start_process(
            self.stack, "bench.limits", "flood", {}, self.logs, ["flood", str(body)]
        )
        bare.wait_http("/health/ready", READY_TIMEOUT_S)
        waiters, streams_open = (500, 50) if self.args.smoke else (flood.WAITERS, flood.STREAMS)
        crowd = [workload.user_id(n) for n in range(min(users - 1, streams_open))]
        probe = workload.user_id(users - 1)
        found = {
            name: asyncio.run(
                flood.flood(server.url, crowd, probe, partitions, waiters, streams_open)
            )
            for name, server in (("query", query), ("bare", bare))
        }
        bare.stop()
        self.results["flood"] = found
        self.results["flood_probe_p99_ms"] = found["query"]["probe"]["p99_ms"]
        self.results["flood_bare_probe_p99_ms"] = found["bare"]["probe"]["p99_ms"]
        self.results["flood_probe_p99_ratio"] = round(
            found["query"]["probe"]["p99_ms"] / found["bare"]["probe"]["p99_ms"], 2
        )

    def commands(self, command: ServiceProcess) -> None:
        limit = start_process(
            self.stack, "bench.limits", "command-limit", UNLIMITED, self.logs, ["command"]
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

    # 10 --------------------------------------------------------------------------------------
    def live_streams(self) -> None:
        """Many open items streams on one instance while orders come for their users."""
        count = 50 if self.args.smoke else streams.STREAMS
        topic = f"bench-streams-{uuid.uuid4().hex[:8]}"
        found = streams.measure(
            self.stack, self.env(topic), self.logs, count, streams.RATE, self.args.seconds
        )
        self.results["streams"] = found
        self.results["streams_delta_p50_ms"] = found["p50_ms"]
        self.results["streams_delta_p99_ms"] = found["p99_ms"]
        self.results["streams_rss_mb"] = found["rss_mb"]


@dataclass
class Ingested:
    settings: KafkaSettings
    env: dict[str, str]
    service: ServiceProcess
    events: int
    progress: Progress
    # From the launch (not from /health/live) until ready, and the CPU used by then.
    from_launch_s: float
    cpu_s: float


def etags(query: ServiceProcess, users: int) -> str:
    """ "<user> <etag>" lines for the first `users` users, as their items answers have them."""
    lines = []
    with httpx.Client(base_url=query.url, timeout=10) as client:
        for n in range(users):
            user = workload.user_id(n)
            lines.append(f"{user} {client.get(f'/users/{user}/items').headers['etag']}")
    return "\n".join(lines) + "\n"


def answered(server: ServiceProcess, status: int) -> float:
    """How many reads the query service has answered with `status` (its request histogram)."""
    text = httpx.get(f"{server.ops_url}/metrics", timeout=10).text
    prefix = "query_request_seconds_count{"
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix) and f'status="{status}"' in line
    )


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


def verdicts(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    table = {}
    for name, (op, target) in TARGETS.items():
        if name not in results:
            continue  # a section not run
        value = results[name]
        met = value >= target if op == ">=" else value <= target
        table[name] = {"value": value, "target": f"{op} {target:g}", "met": met}
    return table


def figures_markdown(results: dict[str, Any], chart: Path) -> str:
    machine = results["machine"]
    rows = []
    for name, meaning in MEANINGS.items():
        verdict = results["targets"].get(name)
        target, met = "", ""
        if verdict is not None:
            target, met = verdict["target"], "met" if verdict["met"] else "**missed**"
        rows.append(
            f"| {name.replace('_', ' ')} | {results[name]} | {target} | {met} | {meaning} |"
        )
    ingest, commands = results["ingest"], results["commands"]
    hot, big, lz4 = results["hot_users"], results["big_user"], results["ingest_lz4"]
    big_items = big["items"]
    added, shared = results["new_instance"], results["ingest_by_instances"]
    forwarding, ryw3 = results["forwarding"], results["ryw_3_instances"]
    queries = results["queries"]
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
            f"the first 30 % of them, {ingest['late_events_per_s']:,} over the last 30 %. "
            f"The workload: {ingest['events']:,} OrderPlaced events as the command service "
            f"writes them (JSON, 1-5 items each, about 400 bytes) over {ingest['events'] // 10:,} "
            "users drawn uniformly, 6 partitions, produced with linger.ms=20, uncompressed.",
            f"- The same from an lz4-compressed topic: the query service "
            f"{lz4['query_service_events_per_s']:,} events/s ({lz4['cpu_us_per_event']} us of "
            f"CPU an event), the bare consumer {lz4['bare_consumer_events_per_s']:,} events/s; "
            f"{lz4['early_events_per_s']:,} events/s over the first 30 %, "
            f"{lz4['late_events_per_s']:,} over the last 30 %.",
            *mixed_markdown(results),
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
            f"- Queries: {queries['real']['requests_per_s']:.0f} GETs/s (p99 "
            f"{queries['real']['p99_ms']} ms) against {queries['limit']['requests_per_s']:.0f}/s "
            f"for a constant body of {queries['body_bytes']} bytes; without the page cache "
            f"{queries['uncached']['requests_per_s']:.0f}/s; conditional GETs answered 304 "
            f"{queries['not_modified']['requests_per_s']:.0f}/s.",
            f"- Read-your-writes at {results['ryw']['achieved_rate']} orders/s: "
            f"p50 {results['ryw']['p50_ms']} ms, p99 {results['ryw']['p99_ms']} ms "
            f"(the client used {results['ryw']['generator_cpu']:.0%} of a core).",
            f"- Two instances, QUERY_REPLICAS=1: through {forwarding['entry']} (holding "
            f"partitions {forwarding['held']}), its own users' items p50 "
            f"{forwarding['local']['p50_ms']} ms, p99 {forwarding['local']['p99_ms']} ms; the "
            f"other's, forwarded, p50 {forwarding['forwarded']['p50_ms']} ms, p99 "
            f"{forwarding['forwarded']['p99_ms']} ms (at {cluster.FORWARD_READ_RATE} GETs/s).",
            f"- Read-your-writes through a random one of three instances at "
            f"{ryw3['achieved_rate']} orders/s ({ryw3['forwarded_share']:.0%} of the GETs "
            f"forwarded): p50 {ryw3['p50_ms']} ms, p99 {ryw3['p99_ms']} ms.",
            f"- The same {shared['events']:,} events from empty state dirs: one instance "
            f"{shared['one']['seconds']} s ({shared['one']['cpu_s']} CPU s), two instances "
            f"{shared['two']['seconds']} s ({shared['two']['cpu_s']} CPU s between them), each "
            "from the launch until every partition is caught up. On two cores shared with the "
            "broker, two instances cannot be expected to double one's rate.",
            f"- An instance added beside one caught up on them was ready after "
            f"{added['ready_s']} s, having folded {added['events_folded']:,} events "
            f"(partitions {added['partitions_held']}).",
            *handoff_markdown(results),
            *tracing_markdown(results),
            "",
            f"![benchmark chart](bench/results/{chart.name})",
        ]
    )


def tracing_markdown(results: dict[str, Any]) -> list[str]:
    found = results.get("tracing")
    if found is None:
        return []
    ingest, commands = found["ingest_events_per_s"], found["commands_per_s"]
    return [
        f"- Tracing over {found['events']:,} events with a traceparent each: the query service "
        f"applied {ingest['off']:,} events/s with tracing off, {ingest['all']:,} with every "
        f"trace sampled, {ingest['low']:,} with 1 in 100; POST /orders {commands['off']:,}/s "
        f"off, {commands['all']:,}/s every request traced, {commands['low']:,}/s 1 in 100 "
        f"({found['span_bytes']:,} bytes of spans exported to a sink that discards them)."
    ]


def mixed_markdown(results: dict[str, Any]) -> list[str]:
    found = results.get("ingest_mixed")
    if found is None:
        return []
    return [
        f"- The same workload with every other event written as OrderPlaced v2 (an upgrade's "
        f"log): the query service {found['query_service_events_per_s']:,} events/s "
        f"({found['cpu_us_per_event']} us of CPU an event), the bare consumer "
        f"{found['bare_consumer_events_per_s']:,} events/s.",
    ]


def handoff_markdown(results: dict[str, Any]) -> list[str]:
    found = results.get("handoff")
    if found is None:
        return []
    return [
        f"- Hand-off over {found['events']:,} events: an added instance was ready after "
        f"{found['handoff']['ready_s']} s with partitions {found['partitions_moved']} handed "
        f"over ({found['handoff']['bytes']:,} bytes), against {found['replay']['ready_s']} s "
        f"replaying the same partitions ({found['replay']['events_folded']:,} events): "
        f"{found['speedup']}x.",
        f"- The serving instance folded {found['serving']['serving_events_per_s']:,} new "
        f"events/s while serving a checkpoint of each of its {found['serving']['checkpoints']} "
        f"partitions ({found['serving']['bytes']:,} bytes in {found['serving']['window_s']} s), "
        f"{found['serving']['alone_events_per_s']:,} for as long again alone: "
        f"{found['serving']['ratio']}.",
    ]


# Each section: what it prints as it starts, and the Bench method that runs it.
RUNS: dict[str, tuple[Callable[[argparse.Namespace], str], Callable[[Bench], None]]] = {
    "ingest": (
        lambda a: f"1+5+8. ingest {a.events:,} events, restart, memory, scale-out",
        Bench.ingest_restart_memory,
    ),
    "hot": (lambda a: f"6. hot users: {a.events:,} events over {HOT_USERS} users", Bench.hot_users),
    "lz4": (lambda a: f"11. ingest {a.events:,} events from an lz4-compressed topic", Bench.lz4),
    "mixed": (
        lambda a: f"14. ingest {a.events:,} events, OrderPlaced v1 and v2 interleaved",
        Bench.mixed_versions,
    ),
    "big": (lambda a: f"7. a user with {a.big_user_orders:,} orders", Bench.big_user),
    "http": (lambda a: "2-4, 9. queries, commands, read-your-writes, forwarding", Bench.http_paths),
    "streams": (lambda a: "10. live streams while orders come", Bench.live_streams),
    "handoff": (
        lambda a: f"12. hand-off against replay over {a.events:,} events",
        Bench.handoff,
    ),
    "tracing": (
        lambda a: f"13. tracing on against off over {a.events // 5:,} events",
        Bench.tracing_cost,
    ),
}


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
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=SECTIONS,
        help="run these sections only (the figures are then not published to BENCHMARKS.md)",
    )
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
        try:
            for section in [name for name in SECTIONS if name in args.only]:
                label, run = RUNS[section]
                print(label(args), flush=True)
                run(bench)
        except BaseException:
            # What the sections before the failure measured is not lost with it.
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "failed.json").write_text(json.dumps(bench.results, indent=2) + "\n")
            print(f"a section failed; what was measured: {args.out / 'failed.json'}")
            raise
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
    partial = list(args.only) != list(SECTIONS)
    name = "smoke" if args.smoke else "partial" if partial else "latest"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    if not partial:
        from bench.chart import draw

        draw(results, args.out / f"{name}.png")
    if args.smoke and not partial:
        # Not published, but written, so that the smoke run exercises it.
        (args.out / "smoke.md").write_text(figures_markdown(results, args.out / "smoke.png"))
    elif not partial:
        publish(results, args.out / f"{name}.png")
    for key in MEANINGS:
        if key not in results:
            continue
        verdict = results["targets"].get(key)
        if verdict is None:
            print(f"     {key:32} {results[key]:>10}")
        else:
            mark = "ok  " if verdict["met"] else "MISS"
            print(f"{mark} {key:32} {verdict['value']:>10} (target {verdict['target']})")
    print(f"wrote {args.out / f'{name}.json'} and {name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
