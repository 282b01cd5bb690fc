"""librdkafka configuration for both services (security included), the error callback that says
why a client cannot reach Kafka, and idempotent topic creation."""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from shared.settings import KafkaSettings

log = logging.getLogger(__name__)

# librdkafka logs through Python logging under this name, so operators control its noise.
LIBRDKAFKA_LOGGER = logging.getLogger("librdkafka")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    config: dict[str, str] = field(default_factory=dict)


def orders_topic(settings: KafkaSettings) -> TopicSpec:
    # The events topic is the source of truth: it keeps every event forever.
    return TopicSpec(
        settings.orders_topic,
        settings.orders_topic_partitions,
        settings.kafka_replication_factor,
        {"retention.ms": "-1", "cleanup.policy": "delete"},
    )


def common_config(settings: KafkaSettings, client_id: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "client.id": client_id,
        "logger": LIBRDKAFKA_LOGGER,
        "error_cb": connection_error_logger(settings, client_id),
        "reconnect.backoff.max.ms": 2000,
        "security.protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol == "SASL_SSL":
        assert settings.kafka_sasl_password is not None  # the settings refuse SASL_SSL without
        config |= {
            "sasl.mechanism": settings.kafka_sasl_mechanism,
            "sasl.username": settings.kafka_sasl_username,
            "sasl.password": settings.kafka_sasl_password.get_secret_value(),
        }
    if settings.kafka_security_protocol != "PLAINTEXT" and settings.kafka_ssl_ca_location:
        config["ssl.ca.location"] = str(settings.kafka_ssl_ca_location)
    return config


# Why a client cannot reach the brokers, in the settings' words. librdkafka retries by itself;
# these only tell the operator what to fix.
_CONNECTION_HINTS: dict[int, str] = {
    KafkaError._AUTHENTICATION: "Kafka refused the credentials (check KAFKA_SASL_USERNAME, "
    "KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM)",
    KafkaError._SSL: "the TLS handshake with Kafka failed (check KAFKA_SSL_CA_LOCATION and that "
    "the broker's certificate names the host in KAFKA_BOOTSTRAP_SERVERS)",
    KafkaError._ALL_BROKERS_DOWN: "no Kafka broker accepts the connection (is it running? A broker "
    "that expects TLS or SASL drops a client with the wrong KAFKA_SECURITY_PROTOCOL at once)",
    KafkaError._TRANSPORT: "the connection to Kafka failed (wrong KAFKA_SECURITY_PROTOCOL, or "
    "the broker is down)",
}
_CONSEQUENCES_OF_A_REFUSAL = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT}
# A refused client retries every few hundred milliseconds: say it once per interval, not each time.
ERROR_LOG_INTERVAL_S = 10.0


def connection_error_logger(
    settings: KafkaSettings, client_id: str
) -> Callable[[KafkaError], None]:
    """librdkafka's `error_cb`: an ERROR line naming the user and protocol, never the password."""
    last_logged: dict[int, float] = {}
    user = settings.kafka_sasl_username if settings.kafka_security_protocol == "SASL_SSL" else None
    who = f"{client_id} as {user!r}" if user else client_id
    where = f"{settings.kafka_bootstrap_servers} over {settings.kafka_security_protocol}"

    def log_error(error: KafkaError) -> None:
        code = error.code()
        now = time.monotonic()
        if now - last_logged.get(code, -ERROR_LOG_INTERVAL_S) < ERROR_LOG_INTERVAL_S:
            return
        refused = now - last_logged.get(KafkaError._AUTHENTICATION, -ERROR_LOG_INTERVAL_S)
        if code in _CONSEQUENCES_OF_A_REFUSAL and refused < ERROR_LOG_INTERVAL_S:
            return  # the broker is up and said why: "all brokers down" would mislead
        last_logged[code] = now
        hint = _CONNECTION_HINTS.get(code)
        if hint is not None or error.fatal():
            log.error("%s: %s at %s: %s", who, hint or "fatal Kafka error", where, error.str())
        else:
            log.warning("%s: Kafka client error at %s: %s", who, where, error.str())

    return log_error


def producer_config(
    settings: KafkaSettings, client_id: str, *, delivery_timeout_ms: int
) -> dict[str, Any]:
    return {
        **common_config(settings, client_id),
        "enable.idempotence": True,
        "acks": "all",
        # murmur2 puts a key where Java clients and Kafka Streams would put it.
        "partitioner": "murmur2_random",
        "linger.ms": 1,
        "message.timeout.ms": delivery_timeout_ms,
        "request.timeout.ms": min(delivery_timeout_ms, 30_000),
    }


def consumer_config(settings: KafkaSettings, client_id: str, group_id: str) -> dict[str, Any]:
    return {
        **common_config(settings, client_id),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        # librdkafka prefetches up to 64 MB by default; 16 MB keeps a batch of thousands ready
        # while bounding the consumer's share of the process's memory.
        "queued.max.messages.kbytes": 16384,
    }


def is_fatal(exc: KafkaException) -> bool:
    """A KafkaException no retry can cure (librdkafka marks it fatal): its thread ends."""
    return bool(exc.args and getattr(exc.args[0], "fatal", lambda: False)())


def ensure_topics(settings: KafkaSettings, topics: list[TopicSpec], timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet; an existing topic is left as it is.

    A client that may not create a topic (ACLs) accepts it if the topic exists and it may see it.
    """
    admin = AdminClient(common_config(settings, "topic-admin"))
    futures = admin.create_topics(
        [
            NewTopic(
                t.name,
                num_partitions=t.partitions,
                replication_factor=t.replication_factor,
                config=t.config,
            )
            for t in topics
        ],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    # Poll while waiting, so that error_cb says at once why Kafka does not answer (a refused
    # login, the wrong protocol) instead of after the whole timeout.
    deadline = time.monotonic() + timeout
    pending = set(futures.values())
    while pending and time.monotonic() < deadline:
        admin.poll(0)
        _, pending = concurrent.futures.wait(pending, timeout=0.1)
    for name, future in futures.items():
        try:
            future.result(timeout=0)
            log.info("created topic %s", name)
        except KafkaException as exc:
            code = exc.args[0].code()
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if code == KafkaError.TOPIC_AUTHORIZATION_FAILED and _visible(admin, name, timeout):
                log.info("topic %s exists (this client may not create topics)", name)
                continue
            raise


def _visible(admin: AdminClient, topic: str, timeout: float) -> bool:
    metadata = admin.list_topics(topic, timeout=timeout).topics.get(topic)
    return metadata is not None and metadata.error is None


def topic_id(settings: KafkaSettings, topic: str, timeout: float = 10.0) -> str:
    """The topic's id: a topic deleted and created again under the same name has a new one."""
    from confluent_kafka import TopicCollection

    admin = AdminClient(common_config(settings, "topic-admin"))
    futures = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)
    return str(futures[topic].result(timeout=timeout).topic_id)
