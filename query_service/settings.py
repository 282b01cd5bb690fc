"""The query service's settings: the shared Kafka base plus where it serves and keeps its view."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.settings import KafkaSettings


class QuerySettings(KafkaSettings):
    query_host: str = Field("127.0.0.1", min_length=1)
    query_port: int = Field(8001, ge=1, le=65_535)
    query_state_dir: Path = Path(".state/query")
    orders_dlq_topic: str = Field("orders.dlq", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    query_consumer_group: str = Field("query-service", min_length=1, max_length=255)
    # Static group membership: a restarted instance (even after kill -9) takes its partitions
    # back at once instead of waiting out the dead member's session. Unique per instance.
    query_instance_id: str = Field("query-service-1", min_length=1, max_length=255)
    # Memory grows with the views a batch touches: 5000 peaked at ~610 MB RSS over 300k events,
    # 1000 at ~310 MB, and ingest was no slower (bench/run.py measures both).
    query_batch_max: int = Field(1000, ge=1, le=100_000)
    # How long the runner waits for a first record when idle (also how often it checks to stop).
    query_batch_timeout_ms: int = Field(200, ge=1, le=10_000)
    query_sse_queue_size: int = Field(64, ge=1, le=10_000)
    query_kafka_retry_s: float = Field(2.0, gt=0, le=300)
    query_command_service_url: str = Field(
        "http://127.0.0.1:8000",
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="The command service's base URL as a browser sees it: the web page served "
        "beside the API posts its orders there (GET /config.json tells it). Its origin must be "
        "allowed by the command service's CORS_ALLOW_ORIGINS.",
    )
