"""docker-compose.yml cannot run here (no Docker engine), so check that it agrees with the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from command_service.settings import CommandSettings
from kafka_local.broker import kafka_version
from query_service.settings import QuerySettings
from shared.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
SETTINGS: dict[str, tuple[str, type[BaseSettings]]] = {
    "command-service": ("command_service", CommandSettings),
    "query-service": ("query_service", QuerySettings),
}


def env_names(settings: type[BaseSettings]) -> set[str]:
    return {name.upper() for name in settings.model_fields}


def test_kafka_image_is_the_version_the_tests_run() -> None:
    assert SERVICES["kafka"]["image"] == f"apache/kafka:{kafka_version()}"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_variable_is_a_setting_of_that_service(service: str) -> None:
    _, settings = SETTINGS[service]
    unknown = set(SERVICES[service]["environment"]) - env_names(settings)
    assert not unknown, f"{service} sets variables its settings do not read: {unknown}"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_runs_its_module_on_its_port_and_waits_for_a_healthy_kafka(service: str) -> None:
    module, settings = SETTINGS[service]
    spec = SERVICES[service]
    env = spec["environment"]
    assert spec["command"] == ["python", "-m", module]
    port_var = "COMMAND_PORT" if module == "command_service" else "QUERY_PORT"
    port = env[port_var]
    assert int(port) == settings.model_fields[port_var.lower()].default
    assert f"{port}:{port}" in spec["ports"]
    assert f"127.0.0.1:{port}/health/ready" in " ".join(spec["healthcheck"]["test"])
    assert spec["depends_on"]["kafka"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_topics_match_the_code_defaults(service: str) -> None:
    env = SERVICES[service]["environment"]
    defaults = KafkaSettings.model_fields
    assert env["ORDERS_TOPIC"] == defaults["orders_topic"].default
    assert int(env["ORDERS_TOPIC_PARTITIONS"]) == defaults["orders_topic_partitions"].default
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_query_state_lives_in_a_named_volume() -> None:
    env = SERVICES["query-service"]["environment"]
    mounts = SERVICES["query-service"]["volumes"]
    assert f"query-state:{env['QUERY_STATE_DIR']}" in mounts
    assert "query-state" in COMPOSE["volumes"]
    dlq_default = QuerySettings.model_fields["orders_dlq_topic"].default
    assert env["ORDERS_DLQ_TOPIC"] == dlq_default


def test_broker_listener_the_services_use_is_advertised() -> None:
    kafka_env = SERVICES["kafka"]["environment"]
    assert "INTERNAL://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka_env["KAFKA_LOG_DIRS"] + "" in " ".join(SERVICES["kafka"]["volumes"])
