"""What every benchmark needs: a broker, the services as real processes, load from wrk, the
CPU and memory each process used, and the query service's progress through the topic."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from devtools.processes import ServiceFailed, ServiceProcess
from kafka_local.broker import LocalBroker, free_port

WRK_DIR = Path(__file__).parent / "wrk"


def start_broker(stack: ExitStack, workdir: Path, bootstrap: str | None) -> str:
    if bootstrap:
        return bootstrap
    broker = LocalBroker(
        workdir / "kafka", port=free_port(), controller_port=free_port(), heap="1g"
    )
    broker.start()
    stack.callback(broker.stop)
    return broker.bootstrap_servers


def start_process(
    stack: ExitStack,
    module: str,
    name: str,
    env: Mapping[str, str],
    logs: Path,
    args: Sequence[str] = (),
) -> ServiceProcess:
    """Launch `module` on a free port, its output in `logs/<name>.log`; stopped with `stack`."""
    process = ServiceProcess(module, env, logs / f"{name}.log", args=args).launch()
    stack.callback(process.stop)
    return process


@dataclass
class Load:
    """One wrk run: throughput, latency, and who was busy (CPU seconds per wall second)."""

    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    generator_cpu: float
    server_cpu: float

    def as_dict(self) -> dict[str, Any]:
        return {
            key: round(value, 3) if isinstance(value, float) else value
            for key, value in asdict(self).items()
        }


def wrk(
    server: ServiceProcess,
    script: str,
    *,
    seconds: float,
    connections: int,
    env: Mapping[str, str] | None = None,
) -> Load:
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed: run `make bench-tools` (Debian package wrk)")
    cmd = [
        binary,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_DIR / script),
        server.url,
    ]
    run_env = {
        **os.environ,
        "BENCH_WRK_DONE": str(WRK_DIR / "done.lua"),
        "BENCH_CONNECTIONS": str(connections),
        **(env or {}),
    }
    server_cpu = server.cpu_seconds()
    started = time.perf_counter()
    popen = subprocess.Popen(cmd, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert popen.stdout is not None
    output = popen.stdout.read().decode()
    _, status, usage = os.wait4(popen.pid, 0)
    popen.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    server_cpu = server.cpu_seconds() - server_cpu
    line = next((ln for ln in output.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if popen.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({popen.returncode}):\n{output}")
    found = json.loads(line.removeprefix("BENCH_JSON "))
    seconds_run = found["duration_us"] / 1e6
    return Load(
        requests_per_s=found["requests"] / seconds_run,
        p50_ms=found["p50_us"] / 1000,
        p90_ms=found["p90_us"] / 1000,
        p99_ms=found["p99_us"] / 1000,
        max_ms=found["max_us"] / 1000,
        requests=found["requests"],
        non_2xx=found["non_2xx"],
        socket_errors=found["socket_errors"],
        generator_cpu=(usage.ru_utime + usage.ru_stime) / wall,
        server_cpu=server_cpu / wall,
    )


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    cuts = statistics.quantiles([s * 1000 for s in seconds], n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49], 3),
        "p99_ms": round(cuts[98], 3),
        "max_ms": round(max(seconds) * 1000, 3),
        "samples": len(seconds),
    }


def applied_events(query: ServiceProcess) -> tuple[bool, int]:
    """Whether the query service is ready, and how many records it has applied: the sum of
    offset + 1 over its partitions. /health/ready tells both, also while it answers 503."""
    answer = httpx.get(f"{query.url}/health/ready", timeout=2)
    offsets: dict[str, int] = answer.json()["applied_offsets"]
    return answer.status_code == 200, sum(offset + 1 for offset in offsets.values())


@dataclass
class Progress:
    """Records applied (from `applied_events`) against seconds since sampling began."""

    samples: list[tuple[float, int]]

    @property
    def ready_s(self) -> float:
        return self.samples[-1][0]

    def time_at(self, events: float) -> float:
        """When `events` were applied, interpolated between the samples either side."""
        previous = (0.0, 0)
        for sample in self.samples:
            if sample[1] >= events:
                (t0, n0), (t1, n1) = previous, sample
                return t0 + (t1 - t0) * (events - n0) / max(n1 - n0, 1)
            previous = sample
        raise ValueError(f"only {previous[1]} records were applied, not {events}")

    def rate(self, start: float, end: float) -> float:
        """Records per second while the applied count went from `start` to `end`."""
        return (end - start) / (self.time_at(end) - self.time_at(start))

    def curve(self, step_s: float) -> list[tuple[float, int]]:
        """The samples thinned to about one per `step_s`, for the results file."""
        kept: list[tuple[float, int]] = []
        for t, n in self.samples:
            if not kept or t - kept[-1][0] >= step_s or t == self.ready_s:
                kept.append((round(t, 2), n))
        return kept


def follow_ingest(query: ServiceProcess, timeout: float, poll_s: float) -> Progress:
    """Sample the query service's progress every `poll_s` until it is ready."""
    started = time.perf_counter()
    samples: list[tuple[float, int]] = []
    while time.perf_counter() - started < timeout:
        if query.popen is None or query.popen.poll() is not None:
            raise ServiceFailed(f"{query.module} exited:\n{query.log_tail()}")
        try:
            ready, events = applied_events(query)
        except httpx.TransportError:
            ready, events = False, 0
        samples.append((time.perf_counter() - started, events))
        if ready:
            return Progress(samples)
        time.sleep(poll_s)
    raise ServiceFailed(f"the query service was not ready within {timeout}s:\n{query.log_tail()}")
