"""The system under test as real processes: a broker whose client listeners are advertised at
Toxiproxy's addresses (one proxy per service, so a network fault can be aimed), the command
service, one or more query instances, each with its view on a small filesystem of its own and
(with more than one) its own proxy for the reads the other instances forward or hand over to
it, and a supervisor that restarts whatever exits or reports itself dead, as an orchestrator
would."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chaos.toxiproxy import Toxiproxy
from devtools.environment import service_env
from devtools.issuer import TestIssuer
from devtools.processes import ServiceProcess
from kafka_local.broker import LocalBroker, free_port

log = logging.getLogger(__name__)

STATE_DISK_MB = 256
BALLAST = "ballast"
# Shared by every query instance of a run: partitions are handed over, stream tickets open on any.
CLUSTER_SECRET = "chaos-cluster-secret-" + "c" * 32
TICKET_SECRET = "chaos-ticket-secret-" + "t" * 32
# The membership's timing, as operators run it (the defaults), stated here for the faults.
HEARTBEAT_MS = 1000
MEMBER_TIMEOUT_MS = 5000


def query_names(instances: int) -> tuple[str, ...]:
    return tuple(f"q{n}" for n in range(1, instances + 1))


@dataclass
class Listener:
    """A broker listener for one service, reached through its own proxy."""

    name: str
    broker_port: int = field(default_factory=free_port)
    proxy_port: int = field(default_factory=free_port)

    @property
    def proxy(self) -> str:
        return f"{self.name.lower()}-kafka"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.proxy_port}"


def chaos_broker(workdir: Path, listeners: dict[str, Listener]) -> LocalBroker:
    """PLAINTEXT stays direct (the harness's own view of the log); each service gets a listener
    advertised at its proxy, so every connection it makes, after bootstrap too, goes through it."""
    port, controller = free_port(), free_port()
    extra = list(listeners.values())
    return LocalBroker(
        workdir,
        port=port,
        controller_port=controller,
        overrides={
            "listeners": ",".join(
                [f"PLAINTEXT://127.0.0.1:{port}", f"CONTROLLER://127.0.0.1:{controller}"]
                + [f"{lst.name}://127.0.0.1:{lst.broker_port}" for lst in extra]
            ),
            "advertised.listeners": ",".join(
                [f"PLAINTEXT://127.0.0.1:{port}"]
                + [f"{lst.name}://127.0.0.1:{lst.proxy_port}" for lst in extra]
            ),
            "listener.security.protocol.map": ",".join(
                ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
                + [f"{lst.name}:PLAINTEXT" for lst in extra]
            ),
        },
    )


class StateDisk:
    """The query service's state dir on a tmpfs of its own, so it can be filled up for real."""

    def __init__(self, mountpoint: Path, size_mb: int = STATE_DISK_MB) -> None:
        self.mountpoint = mountpoint
        self.size_mb = size_mb
        self.mounted = False

    def mount(self) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs", str(self.mountpoint)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"cannot mount a tmpfs for the full-disk fault (needs root): {result.stderr}"
            )
        self.mounted = True

    def fill(self) -> int:
        """Write a ballast file until the filesystem is full; the bytes written."""
        written = 0
        chunk = b"\0" * (1 << 20)
        with (self.mountpoint / BALLAST).open("wb", buffering=0) as out:
            while True:
                try:
                    written += out.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    chunk = chunk[: len(chunk) // 2]
                    if len(chunk) < 4096:
                        return written

    def heal(self) -> None:
        (self.mountpoint / BALLAST).unlink(missing_ok=True)

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=False)
            self.mounted = False


@dataclass
class Incarnation:
    """One process of a service: its pid and memory over its life."""

    pid: int
    started: float
    rss_mb: list[float] = field(default_factory=list)


@dataclass
class PeerProxy:
    """The proxy in front of a query instance's HTTP port for the other instances (forwards and
    hand-overs): its advertised URL. Clients read from the instance directly."""

    name: str
    upstream_port: int
    proxy_port: int = field(default_factory=free_port)

    @property
    def proxy(self) -> str:
        return f"{self.name}-peers"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"


class Stack:
    def __init__(self, workdir: Path, instances: int = 1, replicas: int = 1) -> None:
        self.workdir = workdir
        self.queries = query_names(instances)
        self.names = ("command", *self.queries)
        self.replicas = replicas
        self.listeners = {name: Listener(name.upper()) for name in self.names}
        self.toxiproxy = Toxiproxy(workdir / "toxiproxy.log")
        self.broker = chaos_broker(workdir / "kafka", self.listeners)
        self.disks = {name: StateDisk(workdir / f"state-{name}") for name in self.queries}
        self.issuer = TestIssuer()
        env = {
            **service_env(self.broker.bootstrap_servers),
            **self.issuer.env(),
            # The chaos run measures faults, not the per-user order limit.
            "ORDERS_PER_MINUTE": "1000000",
        }
        self.topic = env["ORDERS_TOPIC"]
        self.dlq_topic = env["ORDERS_DLQ_TOPIC"]
        self.services = {
            "command": ServiceProcess(
                "command_service",
                {**env, "KAFKA_BOOTSTRAP_SERVERS": self.listeners["command"].bootstrap},
                workdir / "command.log",
            )
        }
        self.peers: dict[str, PeerProxy] = {}
        for name in self.queries:
            port = free_port()
            self.peers[name] = peer = PeerProxy(name, port)
            self.services[name] = ServiceProcess(
                "query_service",
                {
                    **env,
                    "KAFKA_BOOTSTRAP_SERVERS": self.listeners[name].bootstrap,
                    "QUERY_STATE_DIR": str(self.disks[name].mountpoint / "query"),
                    "QUERY_INSTANCE_ID": name,
                    "QUERY_REPLICAS": str(replicas),
                    "QUERY_HEARTBEAT_MS": str(HEARTBEAT_MS),
                    "QUERY_MEMBER_TIMEOUT_MS": str(MEMBER_TIMEOUT_MS),
                    "QUERY_ADVERTISED_URL": peer.url,
                    "QUERY_CLUSTER_SECRET": CLUSTER_SECRET,
                    "QUERY_STREAM_TICKET_SECRET": TICKET_SECRET,
                },
                workdir / f"{name}.log",
                port=port,
            )
        # Services a fault keeps down on purpose: the supervisor leaves them be. A fault takes
        # the lock to hold one down, the supervisor to look at one: never both at once.
        self.held_down: set[str] = set()
        self.lock = threading.Lock()
        self.restarts: dict[str, int] = dict.fromkeys(self.names, 0)
        self.exits: dict[str, list[int]] = {name: [] for name in self.names}
        self.incarnations: dict[str, list[Incarnation]] = {name: [] for name in self.names}
        self._unhealthy_since: dict[str, float] = {}
        # (instance, pid) -> counter name -> its value (summed over labels), as last sampled.
        self._counters: dict[tuple[str, int], dict[str, float]] = {}

    @property
    def query_urls(self) -> list[str]:
        return [self.services[name].url for name in self.queries]

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for disk in self.disks.values():
            disk.mount()
        self.toxiproxy.start()
        for listener in self.listeners.values():
            self.toxiproxy.create_proxy(listener.proxy, listener.proxy_port, listener.broker_port)
        for peer in self.peers.values():
            self.toxiproxy.create_proxy(peer.proxy, peer.proxy_port, peer.upstream_port)
        self.broker.start()
        for name in self.names:
            self.launch(name)
        for name in self.names:
            self.services[name].wait_http("/health/ready", timeout=90)

    def launch(self, name: str) -> None:
        service = self.services[name]
        service.launch()
        assert service.popen is not None
        self.incarnations[name].append(Incarnation(service.popen.pid, time.monotonic()))

    def kill(self, name: str) -> None:
        self.services[name].kill()

    def supervise_once(self, grace_s: float = 2.0) -> None:
        """Restart a service that exited, or whose /health/live has said it is dead for
        `grace_s` (the query service's consumer thread stopped): a liveness probe's job."""
        for name in self.names:
            with self.lock:
                self._supervise(name, grace_s)

    def _supervise(self, name: str, grace_s: float) -> None:
        service = self.services[name]
        if name in self.held_down or service.popen is None:
            return
        code = service.popen.poll()
        if code is None:
            if self._live(service):
                self._unhealthy_since.pop(name, None)
                return
            since = self._unhealthy_since.setdefault(name, time.monotonic())
            if time.monotonic() - since < grace_s:
                return
            log.warning("%s reports itself dead: killing it", name)
            service.kill()
            code = service.popen.poll()
        self._unhealthy_since.pop(name, None)
        self.exits[name].append(code if code is not None else -9)
        self.restarts[name] += 1
        log.warning("%s exited (%s): restarting it", name, code)
        self.launch(name)

    def hold_down(self, name: str) -> None:
        """The supervisor leaves `name` be until `release` (once it has finished looking)."""
        with self.lock:
            self.held_down.add(name)

    def release(self, name: str) -> None:
        with self.lock:
            self.held_down.discard(name)

    def _live(self, service: ServiceProcess) -> bool:
        try:
            answer = httpx.get(service.url + "/health/live", timeout=2)
        except httpx.TransportError:
            return True  # still starting, busy or paused: the exit code is the judge
        return answer.status_code != 503

    def sample(self) -> None:
        """Memory of every process, and the counters of every query instance's /metrics."""
        self.sample_rss()
        for name in self.queries:
            service = self.services[name]
            if service.popen is None or service.popen.poll() is not None:
                continue
            with contextlib.suppress(httpx.HTTPError):
                text = httpx.get(service.ops_url + "/metrics", timeout=2).text
                self._counters[(name, service.popen.pid)] = _counters(text)

    def counter_totals(self, metric: str) -> dict[str, int]:
        """A counter's last sample per instance, summed over its processes (each restart
        counts from zero), by instance."""
        totals: dict[str, int] = {}
        for (name, _), counters in self._counters.items():
            totals[name] = totals.get(name, 0) + int(counters.get(metric, 0))
        return totals

    def sample_rss(self) -> None:
        for name, service in self.services.items():
            if service.popen is None or service.popen.poll() is not None:
                continue
            with contextlib.suppress(OSError, ValueError):
                status = Path(f"/proc/{service.popen.pid}/status").read_text()
                for line in status.splitlines():
                    if line.startswith("VmRSS:"):
                        self.incarnations[name][-1].rss_mb.append(int(line.split()[1]) / 1024)

    def stop(self) -> list[str]:
        """Everything down, in order; the processes still running afterwards (none, we hope)."""
        for service in self.services.values():
            if service.popen is not None and service.popen.poll() is None:
                service.popen.send_signal(signal.SIGCONT)  # a paused one must hear the SIGTERM
            service.stop(20)
        self.broker.stop()
        self.toxiproxy.stop()
        self.issuer.close()
        for disk in self.disks.values():
            disk.heal()
            disk.unmount()
        left = [
            f"{name} pid {s.popen.pid}"
            for name, s in self.services.items()
            if s.popen is not None and s.popen.poll() is None
        ]
        if self.broker.process is not None or self.broker.running_pid() is not None:
            left.append("broker")
        if self.toxiproxy.process is not None and self.toxiproxy.process.poll() is None:
            left.append("toxiproxy")
        with contextlib.suppress(OSError):
            os.sync()
        return left


def _counters(text: str) -> dict[str, float]:
    """Prometheus text: each `*_total` counter's value, summed over its labels."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        sample, value = line.rsplit(" ", 1)
        name = sample.split("{", 1)[0]
        if name.endswith("_total"):
            with contextlib.suppress(ValueError):
                found[name] = found.get(name, 0.0) + float(value)
    return found
