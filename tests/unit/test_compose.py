"""docker-compose.yml agrees with the code (tests/compose runs it for real: `make compose-test`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from command_service.settings import CommandSettings
from kafka_local.broker import kafka_version
from kafka_local.secure import MECHANISM
from query_service.settings import QuerySettings
from shared.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
SETTINGS: dict[str, tuple[str, type[BaseSettings]]] = {
    "command-service": ("command_service", CommandSettings),
    "query-service": ("query_service", QuerySettings),
    "query-service-2": ("query_service", QuerySettings),
}


def env_names(settings: type[BaseSettings]) -> set[str]:
    return {name.upper() for name in settings.model_fields}


def public_default(reference: str, variable: str) -> str:
    """The image a `${VARIABLE:-default}` reference names when the variable is unset."""
    prefix = f"${{{variable}:-"
    assert reference.startswith(prefix), reference
    assert reference.endswith("}"), reference
    return reference[len(prefix) : -1]


def with_defaults(value: str) -> str:
    """`value` as compose gives it when no variable it names is set."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_kafka_image_is_the_version_the_tests_run() -> None:
    for name in ("kafka", "kafka-init", "kafka-acls"):
        image = public_default(SERVICES[name]["image"], "KAFKA_IMAGE")
        assert image == f"apache/kafka:{kafka_version()}"


def test_the_kafka_stand_in_is_built_from_the_same_release() -> None:
    pom = (REPO / "compose" / "standins" / "kafka" / "pom.xml").read_text()
    assert f"<kafka.version>{kafka_version()}</kafka.version>" in pom
    standins = (REPO / "compose" / "standins.sh").read_text()
    assert f"KAFKA_TAG=apache/kafka:{kafka_version()}" in standins


@pytest.mark.parametrize(
    ("service", "variable"),
    [
        ("command-service", "PYTHON_IMAGE"),
        ("query-service", "PYTHON_IMAGE"),
        ("query-service-2", "PYTHON_IMAGE"),
        ("oidc", "NODE_IMAGE"),
    ],
)
def test_images_are_built_on_the_public_base_by_default(service: str, variable: str) -> None:
    build = SERVICES[service]["build"]
    dockerfile = (REPO / build["context"] / "Dockerfile").read_text()
    default = public_default(build["args"][variable], variable)
    assert f"ARG {variable}={default}\nFROM ${{{variable}}}" in dockerfile
    standins = (REPO / "compose" / "standins.sh").read_text()
    assert f"_TAG={default}\n" in standins


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
    if service != "query-service-2":  # the second instance needs a port of its own
        assert int(port) == settings.model_fields[port_var.lower()].default
    assert spec["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"127.0.0.1:{port}/health/ready" in " ".join(spec["healthcheck"]["test"])
    assert spec["depends_on"]["kafka"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_topics_match_the_code_defaults(service: str) -> None:
    env = SERVICES[service]["environment"]
    defaults = KafkaSettings.model_fields
    assert env["ORDERS_TOPIC"] == defaults["orders_topic"].default
    assert int(env["ORDERS_TOPIC_PARTITIONS"]) == defaults["orders_topic_partitions"].default
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


@pytest.mark.parametrize(
    ("service", "volume"), [("query-service", "query-state"), ("query-service-2", "query-state-2")]
)
def test_each_query_instance_keeps_its_state_in_a_volume_of_its_own(
    service: str, volume: str
) -> None:
    env = SERVICES[service]["environment"]
    mounts = SERVICES[service]["volumes"]
    assert f"{volume}:{env['QUERY_STATE_DIR']}" in mounts
    assert volume in COMPOSE["volumes"]
    dlq_default = QuerySettings.model_fields["orders_dlq_topic"].default
    assert env["ORDERS_DLQ_TOPIC"] == dlq_default


def test_the_query_instances_form_one_cluster_and_reach_each_other() -> None:
    one, two = (SERVICES[name]["environment"] for name in ("query-service", "query-service-2"))
    assert one["QUERY_INSTANCE_ID"] != two["QUERY_INSTANCE_ID"]
    assert one["ORDERS_TOPIC"] == two["ORDERS_TOPIC"]
    assert one["QUERY_REPLICAS"] == two["QUERY_REPLICAS"] == "2"
    for name, env in (("query-service", one), ("query-service-2", two)):
        assert env["QUERY_ADVERTISED_URL"] == f"http://{name}:{env['QUERY_PORT']}"
    script = (REPO / SERVICES["kafka-acls"]["volumes"][0].split(":")[0]).read_text()
    assert '--topic "$ORDERS_TOPIC.members"' in script
    # One secret for both: partitions are handed over, and a ticket of one opens on the other.
    for variable in ("QUERY_CLUSTER_SECRET", "QUERY_STREAM_TICKET_SECRET"):
        assert one[variable] == two[variable]
        assert one[variable].startswith(f"${{{variable}:?")


def test_broker_listener_the_services_use_is_advertised() -> None:
    kafka_env = SERVICES["kafka"]["environment"]
    assert "INTERNAL://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka_env["KAFKA_LOG_DIRS"] + "" in " ".join(SERVICES["kafka"]["volumes"])


KAFKA_ENV: dict[str, Any] = SERVICES["kafka"]["environment"]
USERS = {"command-service": "command", "query-service": "query", "query-service-2": "query"}


def test_every_service_is_published_on_loopback_only() -> None:
    for name, spec in SERVICES.items():
        published = spec.get("ports", [])
        assert all(str(port).startswith("127.0.0.1:") for port in published), (name, published)
    assert SERVICES["kafka"]["ports"]


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_services_trust_the_compose_issuer_and_fetch_its_keys_inside(service: str) -> None:
    env = SERVICES[service]["environment"]
    issuer = SERVICES["oidc"]["environment"]
    assert env["AUTH_ISSUER"] == f"${{AUTH_ISSUER:-{issuer['OIDC_ISSUER']}}}"
    port = issuer["OIDC_PORT"]
    assert issuer["OIDC_ISSUER"] == f"http://127.0.0.1:{port}"
    assert SERVICES["oidc"]["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert env["AUTH_JWKS_URL"] == f"${{AUTH_JWKS_URL:-http://oidc:{port}/jwks}}"
    assert SERVICES[service]["depends_on"]["oidc"]["condition"] == "service_healthy"


def test_the_issuer_sends_users_back_to_both_query_instances() -> None:
    redirects = SERVICES["oidc"]["environment"]["OIDC_REDIRECT_URIS"].split(",")
    for service in ("query-service", "query-service-2"):
        port = SERVICES[service]["environment"]["QUERY_PORT"]
        for host in ("127.0.0.1", "localhost"):
            assert f"http://{host}:{port}/" in redirects


def test_every_broker_listener_authenticates_and_clients_get_tls() -> None:
    protocols = dict(
        pair.split(":") for pair in KAFKA_ENV["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    listeners = {item.split("://")[0] for item in KAFKA_ENV["KAFKA_LISTENERS"].split(",")}
    assert set(protocols) == listeners
    controller = KAFKA_ENV["KAFKA_CONTROLLER_LISTENER_NAMES"]
    # The controller listener is never published; it authenticates as the broker itself.
    assert protocols.pop(controller) == "SASL_PLAINTEXT"
    assert set(protocols.values()) == {"SASL_SSL"}
    assert KAFKA_ENV["KAFKA_SASL_ENABLED_MECHANISMS"] == MECHANISM
    for listener in listeners:  # the image turns ___ into - and _ into .
        key = f"KAFKA_LISTENER_NAME_{listener}_{MECHANISM.replace('-', '___')}_SASL_JAAS_CONFIG"
        assert 'username="admin"' in KAFKA_ENV[key]
    # No listener name may contain "SSL": the image's start script would then want its layout.
    assert not any("SSL" in name for name in listeners)


def test_acls_are_enforced_with_no_access_by_default() -> None:
    assert KAFKA_ENV["KAFKA_AUTHORIZER_CLASS_NAME"].endswith(".StandardAuthorizer")
    assert KAFKA_ENV["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert KAFKA_ENV["KAFKA_SUPER_USERS"] == "User:admin"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_each_service_connects_over_sasl_ssl_as_its_own_user(service: str) -> None:
    _, settings = SETTINGS[service]
    env = SERVICES[service]["environment"]
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KAFKA_SASL_MECHANISM"] == MECHANISM
    assert env["KAFKA_SASL_USERNAME"] == USERS[service]
    assert env["KAFKA_SASL_PASSWORD"].startswith(f"${{KAFKA_{USERS[service].upper()}_PASSWORD:?")
    ca_dir = env["KAFKA_SSL_CA_LOCATION"].rsplit("/", 1)[0]
    assert f"kafka-ca:{ca_dir}:ro" in SERVICES[service]["volumes"]
    assert SERVICES[service]["depends_on"]["kafka-acls"]["condition"] == (
        "service_completed_successfully"
    )
    settings.model_validate(
        {k.lower(): with_defaults(v) for k, v in env.items()} | {"kafka_sasl_password": "from-.env"}
    )


def test_the_acls_name_what_the_services_use() -> None:
    acls = SERVICES["kafka-acls"]["environment"]
    query = SERVICES["query-service"]["environment"]
    assert acls["ORDERS_TOPIC"] == SERVICES["command-service"]["environment"]["ORDERS_TOPIC"]
    for name in ("ORDERS_TOPIC", "ORDERS_DLQ_TOPIC", "QUERY_CONSUMER_GROUP"):
        assert acls[name] == query[name]
    assert (
        acls["QUERY_CONSUMER_GROUP"] == QuerySettings.model_fields["query_consumer_group"].default
    )
    script = (REPO / SERVICES["kafka-acls"]["volumes"][0].split(":")[0]).read_text()
    assert "--allow-principal User:command" in script
    assert "--allow-principal User:query" in script


def test_the_secrets_stay_out_of_the_services() -> None:
    for service in SETTINGS:
        mounts = " ".join(SERVICES[service].get("volumes", []))
        assert "kafka-secrets" not in mounts
