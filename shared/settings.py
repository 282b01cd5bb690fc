"""The settings base both services extend: where Kafka is, how to reach it securely and which topic
holds the events.

Every field is read from the environment variable of the same name in upper case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256"]


class KafkaSettings(BaseSettings):
    # Inputs stay out of validation errors: one of them may be the password.
    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    kafka_bootstrap_servers: str = Field("localhost:9092", min_length=1)
    orders_topic: str = Field("orders", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    orders_topic_partitions: int = Field(6, ge=1, le=10_000)
    kafka_replication_factor: int = Field(1, ge=1, le=10)
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = Field(None, min_length=1, max_length=255)
    # A SecretStr prints as '**********': the password never reaches a log or an error message.
    kafka_sasl_password: SecretStr | None = None
    # The CA that signed the brokers' certificates (PEM); unset, the system's trust store is used.
    kafka_ssl_ca_location: Path | None = None
    # A schema registry speaking Confluent's REST API (for Apicurio: its /apis/ccompat/v7): the
    # command service registers the topic's schema there before writing, the query service
    # checks it can read what is registered (shared/registry.py). Unset: no registry.
    schema_registry_url: str | None = Field(None, pattern=r"^https?://\S+$")

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        if self.kafka_security_protocol == "SASL_SSL" and (
            self.kafka_sasl_username is None or self.kafka_sasl_password is None
        ):
            raise ValueError(
                "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if self.kafka_sasl_password is not None and not self.kafka_sasl_password.get_secret_value():
            raise ValueError("KAFKA_SASL_PASSWORD must not be empty")
        return self
