"""Toxiproxy, run from the binary `make toxiproxy` builds, and the few calls of its HTTP API the
chaos run makes: proxies, toxics, and switching a proxy off (a network partition)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kafka_local.broker import REPO, free_port, port_open

SERVER = Path(os.environ.get("TOXIPROXY_SERVER", REPO / ".cache" / "toxiproxy" / "server"))


class ToxiproxyError(RuntimeError):
    """The server is missing, did not start, or refused a call."""


@dataclass
class Toxiproxy:
    """The server on 127.0.0.1 only, its log in `log_path`."""

    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if not SERVER.exists():
            raise ToxiproxyError(f"no Toxiproxy server at {SERVER}: run `make toxiproxy`")
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [str(SERVER), "-host", "127.0.0.1", "-port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise ToxiproxyError(f"Toxiproxy did not start; see {self.log_path}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        response = httpx.request(method, self.api + path, json=body, timeout=10)
        if response.status_code >= 300:
            raise ToxiproxyError(f"{method} {path}: {response.status_code} {response.text}")

    def create_proxy(self, name: str, listen_port: int, upstream_port: int) -> None:
        self._call(
            "POST",
            "/proxies",
            {
                "name": name,
                "listen": f"127.0.0.1:{listen_port}",
                "upstream": f"127.0.0.1:{upstream_port}",
                "enabled": True,
            },
        )

    def add_toxic(
        self, proxy: str, name: str, kind: str, stream: str, attributes: dict[str, int]
    ) -> None:
        self._call(
            "POST",
            f"/proxies/{proxy}/toxics",
            {
                "name": name,
                "type": kind,
                "stream": stream,
                "toxicity": 1.0,
                "attributes": attributes,
            },
        )

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        self._call("POST", f"/proxies/{proxy}", {"enabled": enabled})
