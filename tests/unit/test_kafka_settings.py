"""Kafka client security from settings: PLAINTEXT by default, SASL_SSL only with credentials, and
the password in no log line, error message or repr."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError
from pydantic import SecretStr, ValidationError

from shared.kafka import common_config, connection_error_logger
from shared.settings import KafkaSettings

PASSWORD = "s3cret-Pa55"


def secure(**overrides: object) -> KafkaSettings:
    values: dict[str, object] = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_username": "command",
        "kafka_sasl_password": SecretStr(PASSWORD),
        "kafka_ssl_ca_location": "/certs/ca.pem",
    }
    return KafkaSettings.model_validate(values | overrides)


def test_plaintext_by_default_with_nothing_secure_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in KafkaSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    config = common_config(KafkaSettings(), "test")
    assert config["security.protocol"] == "PLAINTEXT"
    assert not {key for key in config if key.startswith(("sasl.", "ssl."))}


def test_sasl_ssl_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "query")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("KAFKA_SSL_CA_LOCATION", "/certs/ca.pem")
    config = common_config(KafkaSettings(), "test")
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("query", PASSWORD)
    assert config["ssl.ca.location"] == "/certs/ca.pem"


@pytest.mark.parametrize("missing", ["kafka_sasl_username", "kafka_sasl_password"])
def test_sasl_ssl_without_credentials_is_refused_naming_them(missing: str) -> None:
    with pytest.raises(ValidationError) as refused:
        secure(**{missing: None})
    assert "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in str(refused.value)
    assert PASSWORD not in str(refused.value)


def test_the_password_is_in_no_repr_or_error() -> None:
    settings = secure()
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.model_dump())
    with pytest.raises(ValidationError) as refused:
        secure(kafka_sasl_mechanism="PLAIN")
    assert PASSWORD not in str(refused.value)


def test_a_refused_login_is_logged_at_error_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log_error = connection_error_logger(secure(), "command-service")
    with caplog.at_level(logging.INFO, logger="shared.kafka"):
        for _ in range(3):  # librdkafka retries: said once, not each time
            log_error(KafkaError(KafkaError._AUTHENTICATION, "invalid credentials"))
        log_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert "'command'" in record.getMessage()
    assert "KAFKA_SASL_PASSWORD" in record.getMessage()
    assert PASSWORD not in caplog.text
