"""docker-compose.yml run for real, through the compose v2 plugin `make compose-plugin` builds into
.cache/compose: the project's own compose file, under a project name only the test uses, with only
the base images substituted (PYTHON_IMAGE, NODE_IMAGE, KAFKA_IMAGE: compose/standins.sh) where
the public ones cannot be pulled.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[1]
COMPOSE_FILE: Final = REPO / "docker-compose.yml"
PLUGIN_DIR: Final = REPO / ".cache" / "compose"
TEST_PROJECT: Final = "orders-compose-test"
# The base images the compose file lets a machine without registry access replace.
BASE_IMAGE_VARIABLES: Final = ("PYTHON_IMAGE", "NODE_IMAGE", "KAFKA_IMAGE")
# All docker compose is given of the caller's environment: how to reach the engine, and the base
# images. Never a variable the compose file reads for a service (a test session's AUTH_*, a
# shell's own), which would change the stack under test.
PASSED_THROUGH: Final = ("PATH", "HOME", "LANG", "TMPDIR", "DOCKER_HOST", "DOCKER_CONTEXT")
# The secrets the compose file requires (`${NAME:?...}`).
SECRET_VARIABLES: Final = (
    "KAFKA_ADMIN_PASSWORD",
    "KAFKA_COMMAND_PASSWORD",
    "KAFKA_QUERY_PASSWORD",
    "KAFKA_KEYSTORE_PASSWORD",
    "QUERY_CLUSTER_SECRET",
    "QUERY_STREAM_TICKET_SECRET",
)
# Where the compose file publishes each service on 127.0.0.1.
COMMAND_URL: Final = "http://127.0.0.1:8000"
QUERY_URLS: Final = ("http://127.0.0.1:8001", "http://127.0.0.1:8002")
ISSUER_URL: Final = "http://127.0.0.1:3999"
KAFKA_EXTERNAL: Final = "127.0.0.1:9094"
# The services that answer for the stack being up (the others are one-shot jobs or the broker).
READY_SERVICES: Final = ("oidc", "kafka", "command-service", "query-service", "query-service-2")


class ComposeFailed(RuntimeError):
    """A `docker compose` command failed or the stack did not become healthy in time."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(f"{message}\n{output[-6000:]}" if output else message)
        self.output = output


def unix_time(stamp: str) -> float:
    """A Docker timestamp (RFC 3339, nanoseconds, UTC) as a Unix time."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    parsed = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    return parsed.timestamp() + float(f"0.{fraction or 0}")


def fresh_secrets() -> dict[str, str]:
    """New values for every secret the compose file requires (hex: no `,`, `=` or quotes)."""
    return {name: secrets.token_hex(24) for name in SECRET_VARIABLES}


@dataclass(frozen=True)
class ComposeStack:
    """One compose project of docker-compose.yml: `project` names its containers and volumes."""

    env: Mapping[str, str]
    project: str = TEST_PROJECT

    def command(self, *args: str) -> list[str]:
        # No .env either: the test's secrets and defaults only.
        files = ["-f", str(COMPOSE_FILE), "--env-file", os.devnull]
        return ["docker", "compose", "-p", self.project, *files, *args]

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        given = {
            name: os.environ[name]
            for name in (*PASSED_THROUGH, *BASE_IMAGE_VARIABLES)
            if name in os.environ
        }
        environment = {**given, "DOCKER_CONFIG": str(PLUGIN_DIR), **self.env}
        try:
            result = subprocess.run(
                self.command(*args),
                cwd=REPO,
                env=environment,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ComposeFailed(
                f"docker compose {' '.join(args)}: no answer in {timeout}s"
            ) from exc
        if check and result.returncode != 0:
            message = f"docker compose {' '.join(args)} exited {result.returncode}"
            raise ComposeFailed(message, result.stdout + result.stderr)
        return result.stdout

    def build(self) -> None:
        self.run("build")

    def up(self, timeout_s: int = 420) -> float:
        """Start (or resume) every service and wait until each is healthy or done; seconds taken."""
        started = time.monotonic()
        try:
            self.run("up", "--detach", "--wait", "--wait-timeout", str(timeout_s))
        except ComposeFailed as exc:
            raise ComposeFailed(str(exc), self.logs()) from exc
        return time.monotonic() - started

    def stop(self, service: str) -> None:
        self.run("stop", service)

    def start(self, services: Sequence[str], timeout_s: int = 420) -> None:
        self.run("up", "--detach", "--wait", "--wait-timeout", str(timeout_s), *services)

    def down(self, *, volumes: bool) -> None:
        """Remove the containers; with `volumes`, the named volumes too. Either way, the
        anonymous volumes of the images' VOLUMEs (apache/kafka's /mnt/shared/config) go: nothing
        is kept in them, and a kept one would be left behind on the engine for good."""
        anonymous = self.anonymous_volumes()
        self.run("down", "--remove-orphans", *(["--volumes"] if volumes else []))
        if anonymous:
            self.docker("volume", "rm", "--force", *anonymous)

    def anonymous_volumes(self) -> list[str]:
        containers = self.run("ps", "--all", "--quiet").split()
        if not containers:
            return []
        template = '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}'
        names = self.docker("inspect", "--format", template, *containers).split()
        named = f"{self.project}_"
        return sorted({name for name in names if not name.startswith(named)})

    def timeline(self) -> dict[str, tuple[float, float | None]]:
        """Each service's container start and, once it has exited, finish (Unix times): where
        the time from `up` to ready went."""
        containers = self.run("ps", "--all", "--quiet").split()
        if not containers:
            return {}
        template = (
            '{{index .Config.Labels "com.docker.compose.service"}} '
            "{{.State.StartedAt}} {{.State.Running}} {{.State.FinishedAt}}"
        )
        marks: dict[str, tuple[float, float | None]] = {}
        for line in self.docker("inspect", "--format", template, *containers).splitlines():
            service, started, running, finished = line.split()
            end = None if running == "true" else unix_time(finished)
            marks[service] = (unix_time(started), end)
        return marks

    def docker(self, *args: str) -> str:
        result = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise ComposeFailed(
                f"docker {' '.join(args)} exited {result.returncode}", result.stderr
            )
        return result.stdout

    def exec(self, service: str, *argv: str) -> str:
        return self.run("exec", "-T", service, *argv)

    def states(self) -> dict[str, str]:
        """Each service's container state, its health where it has one."""
        listing = self.run("ps", "--all", "--format", "json")
        rows = [json.loads(line) for line in listing.splitlines() if line.startswith("{")]
        return {row["Service"]: row.get("Health") or row["State"] for row in rows}

    def logs(self, *services: str) -> str:
        return self.run("logs", "--no-color", "--tail", "80", *services, check=False)
