"""`make run`: the whole system in the foreground, for a developer's machine.

Starts the local broker (unless KAFKA_BOOTSTRAP_SERVERS names one), creates the topics, runs the
command service and the query service with their logs prefixed, and on Ctrl-C stops the services
first and then the broker it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from kafka_local.broker import REPO, BrokerError, LocalBroker, port_open

SERVICES = (("command", "command_service"), ("query", "query_service"))


def _pump(name: str, stream: IO[bytes]) -> None:
    for raw in iter(stream.readline, b""):
        sys.stdout.write(f"[{name:7}] {raw.decode(errors='replace')}")
        sys.stdout.flush()


def _start_broker() -> tuple[str, LocalBroker | None]:
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        print(f"[stack  ] using Kafka at {given}")
        return given, None
    port = int(os.environ.get("KAFKA_LOCAL_PORT", "9092"))
    workdir = Path(os.environ.get("KAFKA_LOCAL_DIR", REPO / ".cache" / "kafka-run"))
    broker = LocalBroker(workdir, port=port, controller_port=port + 1)
    if broker.running_pid() is not None and port_open(port):
        print(f"[stack  ] reusing the Kafka broker already running on {broker.bootstrap_servers}")
        return broker.bootstrap_servers, None
    print(f"[stack  ] starting Kafka on {broker.bootstrap_servers} (log: {broker.log_file})")
    broker.start()
    return broker.bootstrap_servers, broker


def _create_topics(bootstrap: str) -> None:
    from shared.kafka import ensure_topics, orders_topic
    from shared.settings import KafkaSettings

    settings = KafkaSettings(kafka_bootstrap_servers=bootstrap)
    ensure_topics(settings, [orders_topic(settings)])
    print(
        f"[stack  ] topic {settings.orders_topic!r} ready "
        f"({settings.orders_topic_partitions} partitions)"
    )


def main() -> int:
    try:
        bootstrap, broker = _start_broker()
    except BrokerError as exc:
        print(f"[stack  ] {exc}", file=sys.stderr)
        return 1
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        _create_topics(bootstrap)
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PYTHONUNBUFFERED": "1"}
        for name, module in SERVICES:
            # A session of their own, so Ctrl-C reaches only us and we stop them in order.
            child = subprocess.Popen(
                [sys.executable, "-m", module],
                env=env,
                cwd=REPO,
                start_new_session=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            assert child.stdout is not None
            threading.Thread(target=_pump, args=(name, child.stdout), daemon=True).start()
            children.append((name, child))
        print(
            "[stack  ] command service http://127.0.0.1:8000, "
            "query service and web page http://127.0.0.1:8001 - Ctrl-C stops all"
        )
        while not stopping.wait(0.5):
            for name, child in children:
                if child.poll() is not None:
                    print(f"[stack  ] the {name} service exited with {child.returncode}")
                    stopping.set()
        return 0
    finally:
        print("[stack  ] stopping")
        for _, child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 15
        for _, child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if broker is not None:
            broker.stop()
            print("[stack  ] Kafka stopped")


if __name__ == "__main__":
    raise SystemExit(main())
