"""The command service's settings: the shared Kafka base plus HTTP and acknowledgement bounds."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from shared.auth import AuthSettings
from shared.events import READABLE_VERSIONS
from shared.settings import KafkaSettings

DEFAULT_CORS_ORIGINS = ("http://127.0.0.1:8001", "http://localhost:8001")


class CommandSettings(KafkaSettings, AuthSettings):
    command_host: str = Field("127.0.0.1", min_length=1)
    command_port: int = Field(8000, ge=1, le=65535)
    command_access_log: bool = False
    # /metrics without a token: bind it where only operators (and Prometheus) reach.
    command_ops_host: str = Field("127.0.0.1", min_length=1)
    command_ops_port: int = Field(9100, ge=1, le=65535)
    # Past this many open connections and tasks uvicorn answers 503 at once.
    command_limit_concurrency: int = Field(2000, ge=1, le=1_000_000)
    # Per user and per instance (the window is in memory), in a moving window.
    orders_per_minute: int = Field(60, ge=1, le=1_000_000)
    order_ack_timeout_ms: int = Field(5000, ge=100, le=120_000)
    # The OrderPlaced version written. Switch to the newest only once every query instance reads
    # it (README: changing the event): an older reader pauses at an event it cannot read.
    command_event_version: int = 1
    # The web page is served by the query service, a different origin.
    cors_allow_origins: Annotated[tuple[str, ...], NoDecode] = DEFAULT_CORS_ORIGINS

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value

    @field_validator("command_event_version")
    @classmethod
    def _writable(cls, value: int) -> int:
        if value not in READABLE_VERSIONS:
            raise ValueError(f"must be one of {', '.join(map(str, READABLE_VERSIONS))}")
        return value
