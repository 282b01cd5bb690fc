"""`make bench`: every hot path measured side by side with its limit, in one run on one machine.

    .venv/bin/python -m bench.run [--smoke] [--events N] [--bootstrap HOST:PORT] [--out DIR]

1. ingest     the query service (a real process) folds N events from an empty state dir, against a
              bare confluent-kafka consumer reading and discarding the same N in batches;
5. restart    kill -9 once caught up, then time to ready; and the peak RSS during the ingest;
2. commands   POST /orders (acks=all), against the same app with no Kafka; then latency at half
              the maximum throughput, and one client's sequential latency;
4. queries    GET /users/{id}/items over 10,000 users, against a constant JSON of the same size;
3. ryw        at 200 orders/s: from the start of a POST until the GET with its token answers.

Writes DIR/latest.json (or smoke.json) and a chart beside it, and prints every figure.
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
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from confluent_kafka import Consumer

from bench import workload
from bench.harness import Load, percentiles_ms, start_broker, start_process, wrk
from devtools.environment import service_env
from devtools.processes import ServiceProcess
from kafka_local.broker import kafka_version
from shared.kafka import consumer_config
from shared.settings import KafkaSettings

RESULTS = Path(__file__).parent / "results"
# Long enough for the query service to fold a million events before it reports ready.
READY_TIMEOUT_S = 600.0

TARGETS = {
    "ingest_ratio": (">=", 0.5),
    "commands_ratio": (">=", 0.7),
    "commands_half_load_p99_ms": ("<=", 20.0),
    "ryw_p50_ms": ("<=", 10.0),
    "ryw_p99_ms": ("<=", 50.0),
    "queries_ratio": (">=", 0.7),
    "restart_to_ready_s": ("<=", 5.0),
    "ingest_peak_rss_mb": ("<=", 500.0),
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

    def env(self, topic: str) -> dict[str, str]:
        return {**service_env(self.bootstrap, self.workdir / f"state-{topic}", topic), **UNLIMITED}

    def query_service(self, name: str, env: dict[str, str]) -> ServiceProcess:
        return start_process(self.stack, "query_service", name, env, self.logs)

    def command_service(self, env: dict[str, str]) -> ServiceProcess:
        return start_process(self.stack, "command_service", "command", env, self.logs)

    # 1 and 5 ---------------------------------------------------------------------------------
    def ingest_restart_memory(self) -> None:
        events = self.args.events
        topic = f"bench-ingest-{uuid.uuid4().hex[:8]}"
        settings = KafkaSettings(kafka_bootstrap_servers=self.bootstrap, orders_topic=topic)
        ends = workload.produce(settings, events, users=max(1, events // 10))
        bare_s = bare_consumer(settings, sum(ends.values()))
        env = self.env(topic)
        service = self.query_service("query-ingest", env)
        service.wait_http("/health/live", READY_TIMEOUT_S)
        ingest_s = service.wait_http("/health/ready", READY_TIMEOUT_S, poll_s=0.05)
        peak_rss = service.peak_rss_mb()
        service.kill()
        restarted = self.query_service("query-restart", env)
        restart_s = restarted.wait_http("/health/ready", READY_TIMEOUT_S, poll_s=0.01)
        restarted.stop()
        self.results["ingest"] = {
            "events": events,
            "bare_consumer_events_per_s": round(events / bare_s),
            "query_service_events_per_s": round(events / ingest_s),
            "bare_consumer_s": round(bare_s, 2),
            "query_service_s": round(ingest_s, 2),
        }
        self.results["ingest_ratio"] = round(bare_s / ingest_s, 3)
        self.results["ingest_peak_rss_mb"] = round(peak_rss, 1)
        self.results["restart_to_ready_s"] = round(restart_s, 2)

    # 2, 3 and 4 ------------------------------------------------------------------------------
    def http_paths(self) -> None:
        topic = f"bench-system-{uuid.uuid4().hex[:8]}"
        users = self.args.query_users
        settings = KafkaSettings(kafka_bootstrap_servers=self.bootstrap, orders_topic=topic)
        workload.produce(settings, users * 5, users)  # five orders a user: views of some size
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
        f"{'met' if v['met'] else '**missed**'} |"
        for name, v in results["targets"].items()
    ]
    ingest, commands = results["ingest"], results["commands"]
    return "\n".join(
        [
            f"Measured {machine['date']} on {machine['platform']}, {machine['cpus']} CPUs, "
            f"Python {machine['python']}, Kafka {machine['kafka']} ({machine['broker']}); "
            f"the run took {machine['wall_s']} s.",
            "",
            "| figure | measured | target | |",
            "|---|---|---|---|",
            *rows,
            "",
            f"- Ingest: the query service {ingest['query_service_events_per_s']:,} events/s, "
            f"the bare consumer {ingest['bare_consumer_events_per_s']:,} events/s, "
            f"over {ingest['events']:,} events.",
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
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.events = args.events or (2_000 if args.smoke else 1_000_000)
    args.query_users = args.query_users or (200 if args.smoke else 10_000)
    args.seconds = args.seconds or (1.0 if args.smoke else 10.0)
    started = time.perf_counter()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        bench = Bench(args, stack, workdir)
        print(f"1+5. ingest {args.events:,} events, restart, memory", flush=True)
        bench.ingest_restart_memory()
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
    if not args.smoke:
        publish(results, args.out / f"{name}.png")
    for key, verdict in results["targets"].items():
        mark = "ok  " if verdict["met"] else "MISS"
        print(f"{mark} {key:28} {verdict['value']:>10} (target {verdict['target']})")
    print(f"wrote {args.out / f'{name}.json'} and {name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
