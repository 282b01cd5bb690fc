"""librdkafka configuration for both services, and idempotent topic creation."""

from __future__ import annotations

import logging
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
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "client.id": client_id,
        "logger": LIBRDKAFKA_LOGGER,
        "reconnect.backoff.max.ms": 2000,
    }


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


def ensure_topics(settings: KafkaSettings, topics: list[TopicSpec], timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet; an existing topic is left as it is."""
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
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            log.info("created topic %s", name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
