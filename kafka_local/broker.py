"""A real single-node Apache Kafka broker (KRaft, broker+controller) run from Maven Central jars.

Used by `make kafka` / `make run` and by the test suite when no broker is given and no Docker
engine answers. Maven fetches the pinned broker once into a cache outside git; later runs reuse it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
POM = HERE / "pom.xml"
LOG4J2 = HERE / "log4j2.xml"
CACHE = Path(os.environ.get("KAFKA_LOCAL_CACHE", REPO / ".cache" / "kafka"))


class BrokerError(RuntimeError):
    """The local broker could not be fetched, formatted or started."""


def kafka_version() -> str:
    text = POM.read_text()
    start = text.index("<kafka.version>") + len("<kafka.version>")
    return text[start : text.index("</kafka.version>")]


def lib_dir() -> Path:
    return CACHE / f"kafka-{kafka_version()}" / "lib"


def fetch() -> Path:
    """Copy the broker's runtime closure from Maven Central into the cache, once."""
    lib = lib_dir()
    marker = lib / ".complete"
    if marker.exists():
        return lib
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise BrokerError(
            "the local Kafka broker needs Java 17+ and Maven on PATH "
            "(or set KAFKA_BOOTSTRAP_SERVERS to an existing broker)"
        )
    lib.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mvn",
        "-B",
        "-q",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={lib}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        raise BrokerError(f"Maven could not fetch the Kafka broker:\n{output}")
    marker.touch()
    return lib


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read: it may hold passwords or keys."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)  # an existing file keeps its old mode through os.open


def server_properties(
    port: int, controller_port: int, log_dir: Path, overrides: Mapping[str, str] | None = None
) -> str:
    """One combined broker+controller node; `overrides` replaces or adds keys (security)."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }
    props |= overrides or {}
    return "".join(f"{key}={value}\n" for key, value in props.items())


@dataclass
class LocalBroker:
    """One KRaft node in `workdir`: its properties, data and logs all live there."""

    workdir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    # Extra server properties, e.g. more listeners advertised at a proxy's address (the chaos
    # run puts Toxiproxy between each service and the broker this way).
    overrides: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.workdir / "broker.log"

    def _java(self, lib: Path, *args: str) -> list[str]:
        return ["java", "-cp", f"{lib}/*", *args]

    def properties(self) -> str:
        return server_properties(
            self.port, self.controller_port, self.workdir / "data", self.overrides
        )

    def format_args(self) -> list[str]:
        """What `StorageTool format` needs beyond the cluster id and the properties."""
        return ["--standalone"]

    def admin_config(self) -> dict[str, Any]:
        """librdkafka configuration for a client with every right on this broker."""
        return {"bootstrap.servers": self.bootstrap_servers}

    def _format(self, lib: Path) -> Path:
        props = self.workdir / "server.properties"
        write_private(props, self.properties())
        if (self.workdir / "data" / "meta.properties").exists():
            return props
        cluster_id = subprocess.run(
            self._java(lib, "kafka.tools.StorageTool", "random-uuid"),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        fmt = subprocess.run(
            self._java(
                lib,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(props),
                *self.format_args(),
                "-g",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if fmt.returncode != 0:
            raise BrokerError(f"formatting KRaft storage failed:\n{fmt.stdout}{fmt.stderr}")
        return props

    def start(self, timeout: float = 90.0) -> None:
        lib = fetch()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if port_open(self.port) or port_open(self.controller_port):
            raise BrokerError(
                f"port {self.port} or {self.controller_port} is already in use "
                "(by another local broker? `make kafka-stop` stops them)"
            )
        props = self._format(lib)
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        cmd = [
            "java",
            "-Xms256m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={LOG4J2}",
            f"-Dkafka.logs.dir={logs}",
            "-cp",
            f"{lib}/*",
            "kafka.Kafka",
            str(props),
        ]
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid_file.write_text(str(self.process.pid))
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient  # a test-only tool may import lazily

        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        admin: AdminClient | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BrokerError(
                    f"the broker exited at start-up; see {self.log_file}:\n" + self.log_tail()
                )
            if not port_open(self.port):  # the client would only log refused connections
                time.sleep(0.1)
                continue
            if admin is None:
                admin = AdminClient(self.admin_config())
            try:
                admin.list_topics(timeout=2)
                return
            except Exception as exc:  # noqa: BLE001 - any failure here means "not yet"
                last_error = exc
                time.sleep(0.2)
        self.stop()
        raise BrokerError(
            f"the broker did not answer within {timeout:.0f}s ({last_error}); "
            f"see {self.log_file}:\n" + self.log_tail()
        )

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def running_pid(self) -> int | None:
        if not self.pid_file.exists():
            return None
        pid = int(self.pid_file.read_text().strip() or 0)
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return None
        return pid

    def kill(self) -> None:
        """SIGKILL: the broker gets no chance to flush or close its logs (a crash)."""
        pid = self.process.pid if self.process is not None else self.running_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid, self.process):
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        self.process = None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it lingers; no java process is left."""
        pid = self.process.pid if self.process is not None else self.running_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid, self.process):
            time.sleep(0.1)
        if _alive(pid, self.process):
            os.kill(pid, signal.SIGKILL)
            _alive(pid, self.process)
        self.pid_file.unlink(missing_ok=True)
        self.process = None


def _alive(pid: int, process: subprocess.Popen[bytes] | None) -> bool:
    if process is not None:
        return process.poll() is None
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def broker_from_env() -> LocalBroker:
    """The plain broker `make kafka` and `make run` share (KAFKA_LOCAL_PORT, KAFKA_LOCAL_DIR)."""
    workdir = Path(os.environ.get("KAFKA_LOCAL_DIR", REPO / ".cache" / "kafka-run"))
    port = int(os.environ.get("KAFKA_LOCAL_PORT", "9092"))
    return LocalBroker(workdir, port=port, controller_port=port + 1)


def start_unless_running(broker: LocalBroker) -> bool:
    """Start `broker` unless a broker it started before still runs; True if this call started it."""
    if broker.running_pid() is not None and port_open(broker.port):
        return False
    broker.start()
    return True


def main(argv: list[str]) -> int:
    """`python -m kafka_local start|start-secure|stop|status|fetch` for the Makefile."""
    from kafka_local import secure  # secure builds on this module

    broker = broker_from_env()
    command = argv[0] if argv else "status"
    if command == "fetch":
        started = time.monotonic()
        print(f"Kafka {kafka_version()} jars in {fetch()} ({time.monotonic() - started:.1f}s)")
    elif command in ("start", "start-secure"):
        if command == "start-secure":
            broker = secure.broker_from_env()
        started = time.monotonic()
        if not start_unless_running(broker):
            print(f"Kafka already running on {broker.bootstrap_servers}")
        else:
            took = time.monotonic() - started
            print(
                f"Kafka {kafka_version()} started on {broker.bootstrap_servers} "
                f"(pid {broker.running_pid()}, {took:.1f}s, log {broker.log_file})"
            )
        if isinstance(broker, secure.SecureBroker):
            broker.grant(secure.access_from_settings())
            print(f"SASL_SSL; users, ACLs and client settings in {broker.credentials_file}")
    elif command == "stop":
        for each in (broker, secure.broker_from_env()):
            each.stop()
        print("Kafka stopped")
    elif command == "status":
        pids = {b.bootstrap_servers: b.running_pid() for b in (broker, secure.broker_from_env())}
        running = {where: pid for where, pid in pids.items() if pid}
        for where, pid in running.items():
            print(f"Kafka running on {where}, pid {pid}")
        if not running:
            print("Kafka not running")
        return 0 if running else 1
    else:
        print(
            f"unknown command {command!r}: use fetch, start, start-secure, stop or status",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
