"""Ingest throughput of the query service against a bare consumer that reads and discards.

    .venv/bin/python -m bench.ingest [--events 1000000] [--users 100000] [--bootstrap HOST:PORT]

Produces N OrderPlaced events (1-5 items each) to a fresh 6-partition topic first; then times
(a) a bare confluent_kafka consumer reading the N records in batches and discarding them, and
(b) the query service's runner (the real Ingest + RocksDB store, in-process) folding them from an
empty state dir; then restarts a caught-up service as a process and times it to /health/ready,
and measures read-your-writes latency (produce, ack, GET with the token). Writes
bench/results/ingest.json. Without --bootstrap (or KAFKA_BOOTSTRAP_SERVERS) it starts a broker.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer, Producer

from kafka_local.broker import LocalBroker, free_port
from query_service.dead_letters import KafkaDeadLetters
from query_service.ingest import Applied, Ingest
from query_service.metrics import QueryMetrics
from query_service.runner import Runner, settle_heap
from query_service.settings import QuerySettings
from query_service.statedir import current_version
from query_service.store import RocksViewStore
from shared.events import decode, headers
from shared.kafka import consumer_config, ensure_topics, orders_topic, producer_config

RESULTS = Path(__file__).parent / "results"


def produce(settings: QuerySettings, events: int, users: int) -> dict[int, int]:
    """N events, encoded as the event model would; returns each partition's last offset."""
    ensure_topics(settings, [orders_topic(settings)])
    producer = Producer({**producer_config(settings, "bench", delivery_timeout_ms=120_000),
                         "linger.ms": 20, "batch.size": 1_000_000,
                         "queue.buffering.max.messages": 1_000_000})  # fmt: skip
    rng = random.Random(7)
    ends: dict[int, int] = {}

    def landed(err: Any, msg: Any) -> None:
        assert err is None, err
        if msg.offset() > ends.get(msg.partition(), -1):
            ends[msg.partition()] = msg.offset()

    placed_at = datetime.now(UTC).isoformat()
    hdrs = headers()
    started = time.perf_counter()
    for i in range(events):
        user = f"user-{rng.randrange(users)}"
        value = orjson.dumps({
            "event_type": "OrderPlaced", "schema_version": 1,
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "order_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "user_id": user, "placed_at": placed_at, "currency": "GBP",
            "items": [{"sku": f"SKU-{rng.randrange(2000)}", "name": f"Item {i % 97}",
                       "unit_price_minor": rng.randint(1, 20_000), "quantity": rng.randint(1, 5)}
                      for _ in range(rng.randint(1, 5))],
        })  # fmt: skip
        if i == 0:
            decode(value)  # the bench's events are valid events
        while True:
            try:
                producer.produce(settings.orders_topic, value, key=user, headers=hdrs,
                                 on_delivery=landed)  # fmt: skip
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0
    print(f"produced {events} events in {time.perf_counter() - started:.1f}s", flush=True)
    return ends


def bare_consumer(settings: QuerySettings, ends: dict[int, int]) -> float:
    consumer = Consumer(consumer_config(settings, "bench-bare", f"bare-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([settings.orders_topic])
    total = sum(o + 1 for o in ends.values())
    seen = 0
    started = time.perf_counter()
    while seen < total:
        for message in consumer.consume(num_messages=settings.query_batch_max, timeout=0.5):
            if message.error() is None:
                message.value()  # read, then discard
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def query_ingest(settings: QuerySettings, ends: dict[int, int]) -> float:
    store = RocksViewStore(current_version(settings.query_state_dir), settings.orders_topic)
    metrics = QueryMetrics()
    done = threading.Event()
    applied: dict[int, int] = {}

    def on_applied(batch: Applied) -> None:
        applied.update(batch.offsets)
        if all(applied.get(p, -1) >= o for p, o in ends.items()):
            done.set()

    runner = Runner(settings, Ingest(store, KafkaDeadLetters(settings), metrics), metrics,
                    on_applied)  # fmt: skip
    settle_heap()
    started = time.perf_counter()
    runner.start()
    done.wait()
    elapsed = time.perf_counter() - started
    runner.stop()
    store.close()
    batches = metrics.registry.get_sample_value("query_batch_size_count") or 0
    busy = metrics.registry.get_sample_value("query_batch_seconds_sum") or 0
    print(f"query ingest: {batches:.0f} batches, {busy:.1f}s inside Ingest.process", flush=True)
    return elapsed


def time_to_ready(env: dict[str, str], log: Path) -> tuple[float, subprocess.Popen[bytes], str]:
    port = free_port()
    started = time.perf_counter()
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "query_service"],
                                   env={**os.environ, **env, "QUERY_PORT": str(port)},
                                   stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return time.perf_counter() - started, process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"the service exited; see {log}")
        time.sleep(0.01)


def ryw_latency(settings: QuerySettings, url: str, samples: int) -> dict[str, float]:
    producer = Producer(producer_config(settings, "bench-ryw", delivery_timeout_ms=10_000))
    total, get_only = [], []
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(samples):
            user = f"ryw-{i % 50}"
            value = orjson.dumps({
                "event_type": "OrderPlaced", "schema_version": 1, "event_id": str(uuid.uuid4()),
                "order_id": str(uuid.uuid4()), "user_id": user,
                "placed_at": datetime.now(UTC).isoformat(), "currency": "GBP",
                "items": [{"sku": "R", "name": "Ryw", "unit_price_minor": 123, "quantity": 1}],
            })  # fmt: skip
            where: list[tuple[int, int]] = []
            started = time.perf_counter()
            producer.produce(
                settings.orders_topic, value, key=user, headers=headers(),
                on_delivery=lambda _e, m, w=where: w.append((m.partition(), m.offset())),
            )  # fmt: skip
            producer.flush(10)
            acked = time.perf_counter()
            token = f"v1:{where[0][0]}:{where[0][1]}"
            response = client.get(f"/users/{user}/items", params={"consistency_token": token})
            assert response.status_code == 200, response.text
            done = time.perf_counter()
            total.append(done - started)
            get_only.append(done - acked)

    def pct(xs: list[float], q: int) -> float:
        return round(statistics.quantiles(xs, n=100)[q - 1] * 1000, 2)

    return {"samples": samples, "produce_ack_get_p50_ms": pct(total, 50),
            "produce_ack_get_p99_ms": pct(total, 99), "get_after_ack_p50_ms": pct(get_only, 50),
            "get_after_ack_p99_ms": pct(get_only, 99)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--ryw-samples", type=int, default=300)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    broker = None
    if not args.bootstrap:
        broker = LocalBroker(workdir / "kafka", port=free_port(), controller_port=free_port(),
                             heap="1g")  # fmt: skip
        broker.start()
        args.bootstrap = broker.bootstrap_servers
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    env = {"KAFKA_BOOTSTRAP_SERVERS": args.bootstrap, "ORDERS_TOPIC": topic,
           "ORDERS_DLQ_TOPIC": f"{topic}.dlq", "QUERY_STATE_DIR": str(workdir / "state"),
           "QUERY_CONSUMER_GROUP": f"{topic}-query"}  # fmt: skip
    os.environ.update(env)
    settings = QuerySettings()
    process = None
    try:
        ends = produce(settings, args.events, args.users)
        events = sum(o + 1 for o in ends.values())
        bare_s = bare_consumer(settings, ends)
        print(f"bare consumer: {events / bare_s:,.0f} events/s ({bare_s:.1f}s)", flush=True)
        query_s = query_ingest(settings, ends)
        print(f"query ingest:  {events / query_s:,.0f} events/s ({query_s:.1f}s)", flush=True)
        ready_s, process, url = time_to_ready(env, workdir / "restart.log")
        print(f"restart of a caught-up service to ready: {ready_s:.2f}s", flush=True)
        ryw = ryw_latency(settings, url, args.ryw_samples)
        print(f"read-your-writes: {ryw}", flush=True)
        results = {
            "events": events, "users": args.users, "partitions": len(ends),
            "bare_consumer_events_per_s": round(events / bare_s),
            "query_ingest_events_per_s": round(events / query_s),
            "ratio": round(bare_s / query_s, 3),
            "bare_consumer_s": round(bare_s, 2), "query_ingest_s": round(query_s, 2),
            "restart_to_ready_s": round(ready_s, 2), "read_your_writes": ryw,
            "cpus": os.cpu_count(),
        }  # fmt: skip
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "ingest.json").write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
