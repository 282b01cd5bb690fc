"""`make run`: the whole system in the foreground, for a developer's machine.

Starts the local broker (unless KAFKA_BOOTSTRAP_SERVERS names one; with KAFKA_SECURE=1 the
SASL_SSL one, each service connecting as its own user), creates the topics, starts the local
OpenID Connect provider (unless AUTH_ISSUER names one or AUTH_DISABLED is set), runs the command
service and the query service with their logs prefixed, and on Ctrl-C stops the services and the
provider first and then the broker it started.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from typing import IO, TYPE_CHECKING

from kafka_local import secure
from kafka_local.broker import REPO, BrokerError, LocalBroker, broker_from_env, start_unless_running

if TYPE_CHECKING:
    from shared.settings import KafkaSettings

SERVICES = (("command", "command_service"), ("query", "query_service"))
QUERY_FIRST_PORT = 8001
QUERY_FIRST_OPS_PORT = 9101


def _instances() -> int:
    """QUERY_INSTANCES: how many query instances to run (ports 8001, 8002, ...)."""
    text = os.environ.get("QUERY_INSTANCES", "1")
    if not text.isdigit() or not 1 <= int(text) <= 9:
        raise SystemExit(f"QUERY_INSTANCES must be a number from 1 to 9, not {text!r}")
    return int(text)


def _processes(instances: int) -> list[tuple[str, str, dict[str, str]]]:
    """(log name, module, extra environment) of each process to run.

    One query instance runs with the defaults. Several get ports 8001.., instance ids
    query-1.. and state dirs of their own, and form one cluster on the same topic; the web page
    of any of them may post to the command service, and sign in; their ops listeners are on
    9101.. and they share one stream ticket secret and one cluster secret (partitions handed
    over as checkpoints between them).
    """
    if instances == 1:
        return [("command", "command_service", {}), ("query", "query_service", {})]
    ports = [QUERY_FIRST_PORT + i for i in range(instances)]
    origins = ",".join(f"http://{h}:{p}" for p in ports for h in ("127.0.0.1", "localhost"))
    found = [("command", "command_service", {"CORS_ALLOW_ORIGINS": origins})]
    # A stream ticket one instance gives out must be good on any (a stream may be forwarded).
    secret = os.environ.get("QUERY_STREAM_TICKET_SECRET") or secrets.token_hex(32)
    cluster_secret = os.environ.get("QUERY_CLUSTER_SECRET") or secrets.token_hex(32)
    for i, port in enumerate(ports, start=1):
        found.append(
            (
                f"query-{i}",
                "query_service",
                {
                    "QUERY_PORT": str(port),
                    "QUERY_OPS_PORT": str(QUERY_FIRST_OPS_PORT + i - 1),
                    "QUERY_INSTANCE_ID": f"query-{i}",
                    "QUERY_STATE_DIR": str(REPO / ".state" / f"query-{i}"),
                    "QUERY_STREAM_TICKET_SECRET": secret,
                    "QUERY_CLUSTER_SECRET": cluster_secret,
                },
            )
        )
    return found


def _pump(name: str, stream: IO[bytes]) -> None:
    for raw in iter(stream.readline, b""):
        sys.stdout.write(f"[{name:7}] {raw.decode(errors='replace')}")
        sys.stdout.flush()


def _secure() -> bool:
    return os.environ.get("KAFKA_SECURE", "") not in ("", "0")


def _start_broker() -> tuple[dict[str, dict[str, str]], KafkaSettings, LocalBroker | None]:
    """Each service's Kafka environment, the settings to create topics with, and the broker this
    call started (None if it uses one already running)."""
    from shared.settings import KafkaSettings

    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        print(f"[stack  ] using Kafka at {given}")
        return {name: {} for name, _ in SERVICES}, KafkaSettings(), None
    broker = secure.broker_from_env() if _secure() else broker_from_env()
    if start_unless_running(broker):
        print(f"[stack  ] started Kafka on {broker.bootstrap_servers} (log: {broker.log_file})")
        started: LocalBroker | None = broker
    else:
        print(f"[stack  ] reusing the Kafka broker already running on {broker.bootstrap_servers}")
        started = None
    if isinstance(broker, secure.SecureBroker):
        broker.grant(secure.access_from_settings())
        print("[stack  ] SASL_SSL with ACLs; each service connects as its own user")
        # The command service owns the topic: it creates it, as it would at its own start-up.
        envs = {name: broker.client_env(name) for name, _ in SERVICES}
        return envs, broker.client_settings("command"), started
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers}
    return (
        {name: env for name, _ in SERVICES},
        KafkaSettings(kafka_bootstrap_servers=broker.bootstrap_servers),
        started,
    )


def _create_topics(settings: KafkaSettings) -> None:
    from shared.kafka import ensure_topics, orders_topic

    ensure_topics(settings, [orders_topic(settings)])
    print(
        f"[stack  ] topic {settings.orders_topic!r} ready "
        f"({settings.orders_topic_partitions} partitions)"
    )


def _start_oidc(instances: int) -> tuple[dict[str, str], subprocess.Popen[bytes] | None]:
    """The services' AUTH_* environment, and the local provider this call started (if any):
    alice, bob and carol sign in with any password; carol may ask for orders:read-any."""
    from devtools.oidc import LOCAL_PORT, LocalProvider

    if os.environ.get("AUTH_DISABLED", "").lower() in ("1", "true", "yes"):
        print("[stack  ] AUTH_DISABLED: no sign-in, anyone acts as anyone")
        return {}, None
    if os.environ.get("AUTH_ISSUER"):
        print(f"[stack  ] using the OpenID Connect issuer {os.environ['AUTH_ISSUER']}")
        return {}, None
    pages = [
        f"http://{host}:{QUERY_FIRST_PORT + i}/"
        for i in range(instances)
        for host in ("127.0.0.1", "localhost")
    ]
    provider = LocalProvider(
        LOCAL_PORT,
        pages,
        REPO / ".cache" / "oidc" / "keys.json",
        operators=["carol"],
    )
    provider.launch(subprocess.PIPE, start_new_session=True)
    assert provider.popen is not None
    assert provider.popen.stdout is not None
    threading.Thread(target=_pump, args=("oidc", provider.popen.stdout), daemon=True).start()
    provider.wait_ready()
    print(f"[stack  ] OpenID Connect provider {provider.issuer} (users alice, bob, carol)")
    return provider.auth_env(), provider.popen


JAEGER = REPO / ".cache" / "jaeger" / "jaeger"
JAEGER_UI = "http://127.0.0.1:16686"
JAEGER_OTLP = "http://127.0.0.1:4318"


def _start_jaeger() -> tuple[dict[str, str], subprocess.Popen[bytes] | None]:
    """With TRACING=1: the services' OTEL_* environment, and a Jaeger all-in-one (in memory) on
    127.0.0.1 that receives their spans (built by `make jaeger`)."""
    if os.environ.get("TRACING", "") in ("", "0"):
        return {}, None
    if not JAEGER.exists():
        raise BrokerError(f"TRACING=1 needs {JAEGER}: run `make jaeger` (or `TRACING=1 make run`)")
    jaeger = subprocess.Popen(
        [str(JAEGER), "--config", str(REPO / "ops" / "jaeger.yaml")],
        env=os.environ,
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert jaeger.stdout is not None
    threading.Thread(target=_pump, args=("jaeger", jaeger.stdout), daemon=True).start()
    print(
        f"[stack  ] tracing on: one trace per order in Jaeger, "
        f"{JAEGER_UI}/api/traces?service=command_service&limit=20"
    )
    # Spans leave each service within half a second, so a trace is there as the page updates.
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": JAEGER_OTLP, "OTEL_BSP_SCHEDULE_DELAY": "500"}, jaeger


def main() -> int:
    instances = _instances()
    try:
        kafka_env, topic_settings, broker = _start_broker()
    except BrokerError as exc:
        print(f"[stack  ] {exc}", file=sys.stderr)
        return 1
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        _create_topics(topic_settings)
        auth_env, oidc = _start_oidc(instances)
        if oidc is not None:
            children.append(("oidc", oidc))
        tracing_env, jaeger = _start_jaeger()
        if jaeger is not None:
            children.append(("jaeger", jaeger))
        for name, module, extra in _processes(instances):
            user = "command" if module == "command_service" else "query"
            env = {
                # A person reads `make run`'s lines: today's text, unless LOG_FORMAT says json.
                "LOG_FORMAT": "text",
                **os.environ,
                **kafka_env[user],
                **auth_env,
                **tracing_env,
                **extra,
                "PYTHONUNBUFFERED": "1",
            }
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
        queries = ", ".join(f"http://127.0.0.1:{QUERY_FIRST_PORT + i}" for i in range(instances))
        print(
            "[stack  ] command service http://127.0.0.1:8000, "
            f"query service and web page {queries} - Ctrl-C stops all"
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
