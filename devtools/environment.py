"""The environment a service process is given: one topic, its dead-letter topic, a state dir."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Final

# The variable each launchable module reads its listening port from.
PORT_VARIABLES: Final = {
    "command_service": "COMMAND_PORT",
    "query_service": "QUERY_PORT",
    "bench.limits": "BENCH_PORT",
}


# The variable each service reads its ops listener's port from (/metrics without a token).
OPS_PORT_VARIABLES: Final = {
    "command_service": "COMMAND_OPS_PORT",
    "query_service": "QUERY_OPS_PORT",
}


def unique_topic(prefix: str = "orders") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def service_env(
    kafka_bootstrap: str, state_dir: Path | None = None, topic: str | None = None
) -> dict[str, str]:
    """Either service on `topic` (a fresh one if None); the query service's view in `state_dir`
    and a consumer group of its own, so that its lag figures are its alone."""
    topic = topic or unique_topic()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ORDERS_TOPIC": topic,
        "ORDERS_DLQ_TOPIC": f"{topic}.dlq",
        "QUERY_CONSUMER_GROUP": f"{topic}-query-{uuid.uuid4().hex[:6]}",
    }
    if state_dir is not None:
        env["QUERY_STATE_DIR"] = str(state_dir)
    return env
