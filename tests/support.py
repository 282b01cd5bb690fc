"""Helpers for tests that run the services as real processes over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from kafka_local.broker import free_port

T = TypeVar("T")


def unique_topic(prefix: str = "orders") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_for(
    condition: Callable[[], T | None], timeout: float = 30.0, what: str = "condition"
) -> T:
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@dataclass
class ServiceProcess:
    """`python -m <module>` on a free port, with its output in `log_path`."""

    module: str
    env: Mapping[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/health/live", timeout: float = 60.0) -> ServiceProcess:
        port_var = "COMMAND_PORT" if self.module == "command_service" else "QUERY_PORT"
        env = {**os.environ, **self.env, port_var: str(self.port), "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        wait_for(lambda: self._answers(ready_path), timeout, f"{self.module} on {ready_path}")
        return self

    def _answers(self, path: str) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"{self.module} exited:\n{self.log_tail()}")
        try:
            return httpx.get(self.url + path, timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass(frozen=True)
class System:
    command: ServiceProcess
    query: ServiceProcess


@contextmanager
def running_system(kafka_bootstrap: str, workdir: Path) -> Iterator[System]:
    """Both services on a topic of their own, wired as `make run` wires them: the page the query
    service serves may post across origins to the command service."""
    topic = unique_topic()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ORDERS_TOPIC": topic,
        "ORDERS_DLQ_TOPIC": f"{topic}.dlq",
        "QUERY_STATE_DIR": str(workdir / "state"),
        "QUERY_CONSUMER_GROUP": f"{topic}-query",
    }
    command_port, query_port = free_port(), free_port()
    command = ServiceProcess(
        "command_service",
        {**env, "CORS_ALLOW_ORIGINS": f"http://127.0.0.1:{query_port}"},
        workdir / "command.log",
        port=command_port,
    )
    query = ServiceProcess(
        "query_service",
        {**env, "QUERY_COMMAND_SERVICE_URL": command.url},
        workdir / "query.log",
        port=query_port,
    )
    try:
        command.start("/health/ready")
        query.start("/health/ready")
        yield System(command, query)
    finally:
        command.stop()
        query.stop()
