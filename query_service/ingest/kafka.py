"""The consumer thread's Kafka adapters: the view's consumer and the topics it reads from."""

from __future__ import annotations

from confluent_kafka import Consumer as KafkaConsumer

from query_service.ingest.dead_letters import dead_letter_topic
from query_service.ports import Consumer, TopicProvisioner
from query_service.settings import QuerySettings
from shared.kafka import consumer_config, ensure_topics, orders_topic, topic_id


def kafka_consumer(settings: QuerySettings) -> Consumer:
    """The view's consumer. It never joins the group (assign, not subscribe): nothing to wait
    out when an instance stops or starts."""
    consumer: Consumer = KafkaConsumer(
        {
            **consumer_config(settings, "query-service", settings.query_consumer_group),
            # Every partition starts at an explicit offset: one the log no longer has (the topic
            # was recreated, or truncated) is an error, never a silent jump.
            "auto.offset.reset": "error",
        }
    )
    return consumer


def kafka_topics(settings: QuerySettings, timeout: float = 10.0) -> TopicProvisioner:
    """Creates the orders and dead-letter topics if missing; returns the orders topic's id."""

    def provision() -> str:
        ensure_topics(settings, [orders_topic(settings), dead_letter_topic(settings)], timeout)
        return topic_id(settings, settings.orders_topic, timeout)

    return provision
