"""The command service's settings: the shared Kafka base plus HTTP and acknowledgement bounds."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from shared.settings import KafkaSettings

DEFAULT_CORS_ORIGINS = ("http://127.0.0.1:8001", "http://localhost:8001")


class CommandSettings(KafkaSettings):
    command_host: str = Field("127.0.0.1", min_length=1)
    command_port: int = Field(8000, ge=1, le=65535)
    command_access_log: bool = False
    order_ack_timeout_ms: int = Field(5000, ge=100, le=120_000)
    # The web page is served by the query service, a different origin.
    cors_allow_origins: Annotated[tuple[str, ...], NoDecode] = DEFAULT_CORS_ORIGINS

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value
