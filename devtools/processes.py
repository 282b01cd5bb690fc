"""A service (or a benchmark's limit app) run as `python -m <module>` on a free port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devtools.environment import OPS_PORT_VARIABLES, PORT_VARIABLES
from kafka_local.broker import free_port

REPO = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServiceFailed(RuntimeError):
    """The process exited, or did not answer in time."""


@dataclass
class ServiceProcess:
    """`python -m <module> [args]` with `env`, listening on `port`, its output in `log_path`.

    May be started again after `kill` or `stop`: on the same port, appending to the same log.
    """

    module: str
    env: Mapping[str, str]
    log_path: Path
    args: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    # Its ops listener (/metrics without a token), for the services that have one.
    ops_port: int = field(default_factory=free_port)
    # The source tree it runs from: another release's, extracted elsewhere, for upgrade tests.
    cwd: Path = REPO
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.ops_port}"

    def launch(self) -> ServiceProcess:
        """Start the process without waiting for it to answer."""
        env = {
            **os.environ,
            **self.env,
            PORT_VARIABLES[self.module]: str(self.port),
            **(
                {OPS_PORT_VARIABLES[self.module]: str(self.ops_port)}
                if self.module in OPS_PORT_VARIABLES
                else {}
            ),
            "PYTHONUNBUFFERED": "1",
        }
        with self.log_path.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                env=env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def start(self, ready_path: str = "/health/live", timeout: float = 60.0) -> ServiceProcess:
        """Start the process and wait until `ready_path` answers 200."""
        self.launch()
        self.wait_http(ready_path, timeout)
        return self

    def wait_http(self, path: str, timeout: float = 60.0, poll_s: float = 0.02) -> float:
        """Seconds until `path` answers 200; ServiceFailed if the process exits or time runs out."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if self.popen is None or self.popen.poll() is not None:
                raise ServiceFailed(f"{self.module} exited:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(poll_s)
        raise ServiceFailed(
            f"{self.module} did not answer 200 on {path} within {timeout}s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used so far."""
        assert self.popen is not None
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime

    def peak_rss_mb(self) -> float:
        assert self.popen is not None
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise ServiceFailed("no VmHWM in /proc status")

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
