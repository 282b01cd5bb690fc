"""Acknowledgement latency of POST /orders as one client on loopback sees it.

Starts a local Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS names one) and the command service as
a process, sends WARMUP then REQUESTS sequential orders over one keep-alive connection, and prints
and writes (bench/results/ack_latency.json) the round-trip percentiles.

    .venv/bin/python bench/ack_latency.py [--requests 2000] [--warmup 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kafka_local.broker import LocalBroker, free_port, kafka_version  # noqa: E402

RESULTS = REPO / "bench" / "results"


def _order(i: int) -> dict[str, object]:
    return {
        "user_id": f"bench-user-{i % 50}",
        "items": [
            {"sku": "SKU-1", "name": "Tea", "unit_price": "4.99", "quantity": 2},
            {"sku": "SKU-2", "name": "Teapot", "unit_price": "24.50", "quantity": 1},
        ],
    }


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the command service exited; see its log")
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the command service did not become ready")


def _percentile(sorted_ms: list[float], q: float) -> float:
    index = min(len(sorted_ms) - 1, max(0, round(q * len(sorted_ms)) - 1))
    return sorted_ms[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()

    with ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-kafka-")))
            broker = LocalBroker(workdir, port=free_port(), controller_port=free_port())
            broker.start()
            stack.callback(broker.stop)
            bootstrap = broker.bootstrap_servers
        port = free_port()
        topic = f"bench-orders-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "ORDERS_TOPIC": topic,
               "COMMAND_PORT": str(port)}  # fmt: skip
        log_dir = RESULTS / "tmp"
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / "command.log").open("wb") as log:
            service = subprocess.Popen(
                [sys.executable, "-m", "command_service"], env=env, cwd=REPO,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        stack.callback(service.wait, 20)
        stack.callback(service.terminate)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, service)

        with httpx.Client(base_url=url, timeout=10) as client:
            for i in range(args.warmup):
                client.post("/orders", json=_order(i)).raise_for_status()
            latencies_ms: list[float] = []
            started = time.perf_counter()
            for i in range(args.requests):
                sent = time.perf_counter()
                response = client.post("/orders", json=_order(i))
                latencies_ms.append((time.perf_counter() - sent) * 1000)
                response.raise_for_status()
            wall_s = time.perf_counter() - started

    ordered = sorted(latencies_ms)
    result = {
        "requests": args.requests,
        "warmup": args.warmup,
        "p50_ms": round(_percentile(ordered, 0.50), 3),
        "p90_ms": round(_percentile(ordered, 0.90), 3),
        "p99_ms": round(_percentile(ordered, 0.99), 3),
        "max_ms": round(ordered[-1], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
        "orders_per_s": round(args.requests / wall_s, 1),
        "setup": {
            "client": "one httpx.Client, keep-alive, sequential, loopback",
            "kafka": os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or f"local {kafka_version()}",
            "producer": "idempotent, acks=all, linger.ms=1",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ack_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
