"""The topic's schema in a real schema registry: Apicurio Registry (registry/run.sh, unpacked from
Maven Central), through its Confluent-compatible API and confluent-kafka's client, as
SCHEMA_REGISTRY_URL makes the services use it."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.processes import REPO, ServiceProcess
from kafka_local.broker import free_port
from shared.events import topic_schema
from shared.exceptions import SchemaRejected
from shared.registry import (
    ConfluentSchemaRegistry,
    Unreadable,
    register_written,
    subject_for,
    unreadable,
)
from tests.support import wait_for

pytestmark = pytest.mark.registry

READY_TIMEOUT_S = 180  # the first run unpacks the registry from Maven Central


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("registry") / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(REPO / "registry" / "run.sh"), str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7"

    def answering() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"registry/run.sh exited:\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{url}/subjects", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answering, READY_TIMEOUT_S, "the registry to answer")
        yield url
    finally:
        process.terminate()
        process.wait(30)


def _topic() -> str:
    return f"orders-{uuid.uuid4().hex[:8]}"


def test_each_writer_switch_is_accepted_and_so_is_a_rollback(registry_url: str) -> None:
    registry = ConfluentSchemaRegistry(registry_url)
    topic = _topic()
    first = register_written(registry, topic, 1)
    second = register_written(registry, topic, 2)
    # A writer rolled back to v1: the topic's v1 schema is a version already registered.
    assert register_written(registry, topic, 1) == first != second
    registered = registry.registered(subject_for(topic))
    assert [json.loads(text) for _, text in registered] == [topic_schema(1), topic_schema(2)]
    assert unreadable(registry, topic) == []
    compatibility = httpx.get(f"{registry_url}/config/{subject_for(topic)}", timeout=5).json()
    assert compatibility["compatibilityLevel"] == "BACKWARD"


def test_a_change_to_a_shipped_version_is_refused(registry_url: str) -> None:
    registry = ConfluentSchemaRegistry(registry_url)
    topic = _topic()
    register_written(registry, topic, 2)
    changed = topic_schema(2)
    v1 = changed["$defs"]["OrderPlacedV1"]
    # Version 1 suddenly requiring a field its events never had: old events would not read.
    v1["properties"]["channel"] = {"type": "string"}
    v1["required"] = [*v1["required"], "channel"]
    with pytest.raises(SchemaRejected, match="did not register"):
        registry.register(subject_for(topic), json.dumps(changed))
    dropped = topic_schema(2)
    dropped["oneOf"] = dropped["oneOf"][1:]  # v1 events forgotten: they are still in the log
    with pytest.raises(SchemaRejected, match="did not register"):
        registry.register(subject_for(topic), json.dumps(dropped))


def test_a_writer_the_registry_refuses_does_not_start_and_a_reader_is_warned(
    registry_url: str, tmp_path: Path
) -> None:
    registry = ConfluentSchemaRegistry(registry_url)
    topic = _topic()
    # A newer writer's schema (v1, v2 and a v3 this release does not know) registered first.
    newer = topic_schema(2)
    newer["$defs"]["OrderPlacedV3"] = {"type": "object", "properties": {"schema_version": {}}}
    newer["oneOf"].append({"$ref": "#/$defs/OrderPlacedV3"})
    registry.register(subject_for(topic), json.dumps(newer))
    assert unreadable(registry, topic) == [Unreadable(subject_for(topic), 1)]

    env = {
        # Never reached: the registry refuses before the service touches Kafka.
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "ORDERS_TOPIC": topic,
        "SCHEMA_REGISTRY_URL": registry_url,
        "COMMAND_EVENT_VERSION": "2",
        "AUTH_DISABLED": "true",
    }
    writer = ServiceProcess("command_service", env, tmp_path / "command.log").launch()
    assert writer.popen is not None
    assert writer.popen.wait(60) != 0
    logged = writer.log_path.read_text()
    assert "not starting: OrderPlaced v2 cannot be written" in logged
    assert "COMBINED_TYPE_ONE_OF_SIZE_DECREASED" in logged
