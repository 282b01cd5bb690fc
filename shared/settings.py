"""The settings base both services extend: where Kafka is and which topic holds the events.

Every field is read from the environment variable of the same name in upper case.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    kafka_bootstrap_servers: str = Field("localhost:9092", min_length=1)
    orders_topic: str = Field("orders", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    orders_topic_partitions: int = Field(6, ge=1, le=10_000)
    kafka_replication_factor: int = Field(1, ge=1, le=10)
