"""Kafka over SASL_SSL with SCRAM users and ACLs: the thin slice runs with each service's own
rights, every other use is refused by the broker, and a refused service says so and is not ready."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from pydantic import SecretStr

from devtools.environment import unique_topic
from devtools.processes import ServiceProcess
from kafka_local.secure import OrderAccess, SecureBroker
from shared.kafka import common_config, consumer_config, ensure_topics, orders_topic
from shared.kafka import producer_config as kafka_producer_config
from shared.settings import KafkaSettings
from tests.support import System, as_named_user, wait_for

ORDER = {
    "user_id": "alice",
    "items": [{"sku": "PEN", "name": "Pen", "unit_price": "4.99", "quantity": 3}],
}


@pytest.fixture
def access(secure_kafka: SecureBroker) -> OrderAccess:
    """A topic, dead-letter topic and group of the test's own, with the ACLs the services get."""
    topic = unique_topic()
    names = OrderAccess(topic, f"{topic}.dlq", f"{topic}-query")
    secure_kafka.grant(names)
    return names


def service_env(broker: SecureBroker, user: str, access: OrderAccess) -> dict[str, str]:
    return {
        **broker.client_env(user),
        "ORDERS_TOPIC": access.orders_topic,
        "ORDERS_DLQ_TOPIC": access.dlq_topic,
        "QUERY_CONSUMER_GROUP": access.query_group,
    }


def settings_of(broker: SecureBroker, user: str, access: OrderAccess) -> KafkaSettings:
    return broker.client_settings(user).model_copy(update={"orders_topic": access.orders_topic})


@pytest.fixture
def orders_exist(secure_kafka: SecureBroker, access: OrderAccess) -> OrderAccess:
    """The orders topic, created as the command service creates it."""
    settings = settings_of(secure_kafka, "command", access)
    ensure_topics(settings, [orders_topic(settings)], timeout=15)
    return access


@pytest.fixture
def secure_system(
    secure_kafka: SecureBroker, access: OrderAccess, tmp_path: Path
) -> Iterator[System]:
    command = ServiceProcess(
        "command_service", service_env(secure_kafka, "command", access), tmp_path / "command.log"
    )
    query = ServiceProcess(
        "query_service",
        {
            **service_env(secure_kafka, "query", access),
            "QUERY_STATE_DIR": str(tmp_path / "state"),
            "QUERY_COMMAND_SERVICE_URL": command.url,
        },
        tmp_path / "query.log",
    )
    try:
        command.start("/health/ready")
        query.start("/health/ready")
        yield System(command, query)
    finally:
        command.stop()
        query.stop()


def test_the_thin_slice_runs_over_sasl_ssl_each_service_with_its_own_rights(
    secure_system: System, secure_kafka: SecureBroker
) -> None:
    placed = httpx.post(
        f"{secure_system.command.url}/orders", json=ORDER, timeout=10, auth=as_named_user()
    )
    assert placed.status_code == 201, placed.text
    view = httpx.get(
        f"{secure_system.query.url}/users/alice/items",
        params={"consistency_token": placed.json()["consistency_token"], "wait_ms": 10_000},
        timeout=15,
        auth=as_named_user(),
    )
    assert view.status_code == 200, view.text
    (line,) = view.json()["groups"]["cheap"]["lines"]
    assert (line["sku"], line["order_count"]) == ("PEN", 1)
    for service in (secure_system.command, secure_system.query):
        log = service.log_path.read_text()
        assert not any(secure_kafka.password(user) in log for user in ("command", "query"))


def first_error(consumer: Consumer, timeout: float = 15.0) -> KafkaError:
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            assert error is not None, "the consumer read a record it has no right to"
            return error
    finally:
        consumer.close()
    raise AssertionError(f"no error from the broker within {timeout}s")


def test_the_command_services_user_cannot_read_orders(
    secure_kafka: SecureBroker, orders_exist: OrderAccess
) -> None:
    settings = settings_of(secure_kafka, "command", orders_exist)
    # Under the query service's group: the group is not the command service's to use.
    consumer = Consumer(consumer_config(settings, "test-intruder", orders_exist.query_group))
    consumer.subscribe([orders_exist.orders_topic])
    assert first_error(consumer).code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    # Under a group of its own nothing changes: it has no group, and no READ on the topic.
    consumer = Consumer(consumer_config(settings, "test-intruder", "command-reader"))
    consumer.subscribe([orders_exist.orders_topic])
    assert first_error(consumer).code() == KafkaError.GROUP_AUTHORIZATION_FAILED


def deliver(settings: KafkaSettings, topic: str) -> KafkaError | None:
    producer = Producer(
        kafka_producer_config(settings, "test-producer", delivery_timeout_ms=15_000)
    )
    outcome: list[KafkaError | None] = []

    def on_delivery(error: KafkaError | None, _: Message) -> None:
        outcome.append(error)

    producer.produce(topic, value=b"{}", key=b"alice", on_delivery=on_delivery)
    producer.flush(20)
    assert outcome, "no delivery report"
    return outcome[0]


def test_the_query_services_user_cannot_write_orders(
    secure_kafka: SecureBroker, orders_exist: OrderAccess
) -> None:
    settings = settings_of(secure_kafka, "query", orders_exist)
    refused = deliver(settings, orders_exist.orders_topic)
    assert refused is not None
    assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # The same user and producer settings may write where its rights say: its dead letters.
    ensure_topics(
        settings,
        [orders_topic(settings.model_copy(update={"orders_topic": orders_exist.dlq_topic}))],
    )
    assert deliver(settings, orders_exist.dlq_topic) is None


def test_a_wrong_password_is_refused(secure_kafka: SecureBroker, access: OrderAccess) -> None:
    settings = settings_of(secure_kafka, "command", access).model_copy(
        update={"kafka_sasl_password": SecretStr("not-the-password")}
    )
    errors: list[KafkaError] = []
    producer = Producer({**common_config(settings, "test-impostor"), "error_cb": errors.append})
    wait_for(lambda: producer.poll(0.1) is not None and errors, 15, "the broker's refusal")
    assert errors[0].code() == KafkaError._AUTHENTICATION
    assert "invalid credentials" in errors[0].str()


BAD_CLIENTS = {
    # what the service is told -> what its log must say
    "wrong password": ({"KAFKA_SASL_PASSWORD": "not-the-password"}, "refused the credentials"),
    "plaintext": ({"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, "no Kafka broker accepts"),
    "tls without sasl": ({"KAFKA_SECURITY_PROTOCOL": "SSL"}, "no Kafka broker accepts"),
}


@pytest.mark.parametrize("module", ["command_service", "query_service"])
@pytest.mark.parametrize("case", sorted(BAD_CLIENTS))
def test_a_refused_service_says_why_and_is_not_ready(
    secure_kafka: SecureBroker, orders_exist: OrderAccess, tmp_path: Path, module: str, case: str
) -> None:
    override, said = BAD_CLIENTS[case]
    user = module.split("_")[0]
    env = {
        **service_env(secure_kafka, user, orders_exist),
        "QUERY_STATE_DIR": str(tmp_path / "state"),
        **override,
    }
    service = ServiceProcess(module, env, tmp_path / f"{module}.log").start("/health/live")
    try:
        wait_for(lambda: said in service.log_path.read_text(), 30, f"{said!r} in the log")
        assert httpx.get(f"{service.url}/health/ready", timeout=5).status_code == 503
        log = service.log_path.read_text()
        records = [json.loads(line) for line in log.splitlines()]  # LOG_FORMAT=json
        assert any(
            (r["level"], r["logger"]) == ("ERROR", "shared.kafka") and said in r["message"]
            for r in records
        )
        assert secure_kafka.password(user) not in log
        assert "not-the-password" not in log
    finally:
        service.kill()  # a graceful stop would wait out the attempt to reach Kafka
