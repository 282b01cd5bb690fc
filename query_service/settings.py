"""The query service's settings: the shared Kafka base plus where it serves and keeps its view."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from shared.auth import AuthSettings
from shared.settings import KafkaSettings


class QuerySettings(KafkaSettings, AuthSettings):
    query_host: str = Field("127.0.0.1", min_length=1)
    query_port: int = Field(8001, ge=1, le=65_535)
    query_state_dir: Path = Path(".state/query")
    orders_dlq_topic: str = Field("orders.dlq", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    query_consumer_group: str = Field("query-service", min_length=1, max_length=255)
    # Unique per instance and stable across its restarts (placement hashes it): by default
    # <host>-<port>. Two processes with the same id are a clash the instances report by name.
    query_instance_id: str = Field("", max_length=255, pattern=r"^[A-Za-z0-9._:-]*$")
    # Where the other instances reach this one (forwarded reads); default http://HOST:PORT.
    query_advertised_url: str = Field("", pattern=r"^(https?://[^\s/]+)?$")
    # How many instances hold (fold and serve) each partition.
    query_replicas: int = Field(1, ge=1, le=16)
    # The compacted topic the instances heartbeat into; default <ORDERS_TOPIC>.members.
    query_members_topic: str = Field("", pattern=r"^[A-Za-z0-9._-]{0,249}$")
    query_heartbeat_ms: int = Field(1000, ge=50, le=60_000)
    # An instance not heard from for this long is taken as gone, and its partitions move.
    query_member_timeout_ms: int = Field(5000, ge=200, le=600_000)
    # How long the state of a partition this instance no longer holds stays on disk, in case
    # it comes back (a restart of another instance) before it is deleted.
    query_drop_grace_s: float = Field(60.0, ge=0, le=86_400)
    # A forwarded read's bound, on top of the wait it asks for.
    query_forward_timeout_ms: int = Field(2000, ge=100, le=60_000)
    # /health/ready is 503 while any partition held is further behind the log than this.
    query_ready_max_lag: int = Field(10_000, ge=0, le=100_000_000)
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

    @model_validator(mode="after")
    def _derived_defaults(self) -> QuerySettings:
        # Frozen: the defaults that depend on other fields are filled in once, here.
        if not self.query_instance_id:
            object.__setattr__(
                self, "query_instance_id", f"{socket.gethostname()}-{self.query_port}"
            )
        if not self.query_advertised_url:
            object.__setattr__(
                self, "query_advertised_url", f"http://{self.query_host}:{self.query_port}"
            )
        if not self.query_members_topic:
            object.__setattr__(self, "query_members_topic", f"{self.orders_topic}.members")
        return self

    @property
    def members_topic(self) -> str:
        return self.query_members_topic

    # /metrics (and other ops routes) without a token: where only operators reach.
    query_ops_host: str = Field("127.0.0.1", min_length=1)
    query_ops_port: int = Field(9101, ge=1, le=65_535)
    # Past this many open connections and tasks uvicorn answers 503 at once. Every open stream
    # and waiter holds one, so it is above their caps.
    query_limit_concurrency: int = Field(10_000, ge=1, le=1_000_000)
    # Caps that keep one client from starving the rest, per instance: past them a request is
    # refused at once (503, or 429 for one user's streams), never queued.
    query_max_waiters: int = Field(1000, ge=1, le=1_000_000)
    query_max_streams: int = Field(1000, ge=1, le=1_000_000)
    query_max_streams_per_user: int = Field(5, ge=1, le=10_000)
    # The encoded answers kept for reuse while their user's view is unchanged (http/page_cache.py),
    # in MiB of answer bytes; 0 keeps none.
    query_page_cache_mb: int = Field(64, ge=0, le=65_536)
    # Signs stream tickets. Unset, each process makes its own: instances behind one load
    # balancer must share one (a ticket from one is then valid on all).
    query_stream_ticket_secret: SecretStr | None = Field(None, min_length=32)
    query_stream_ticket_s: int = Field(60, ge=5, le=3600)
    # How the web page signs in (GET /config.json): its OpenID Connect client at AUTH_ISSUER, the
    # resource indicator that makes the issuer mint a JWT for AUTH_AUDIENCE, the scopes it asks.
    query_page_client_id: str = Field("orders-page", min_length=1)
    query_page_resource: str = Field("urn:orders", min_length=1)
    query_page_scope: str = Field("openid orders:read orders:write", min_length=1)
    # Hand-off (a new copy of a partition fetched as a RocksDB checkpoint from a caught-up one
    # instead of replayed from the log): only between instances that share this secret; unset,
    # no checkpoint is served or asked for and every copy is built from the log.
    query_cluster_secret: SecretStr | None = Field(None, min_length=32)
    # A partition taken up with no state, or whose state is more than this many events behind
    # the log's end, is asked for; closer, replaying the gap is cheaper than any transfer.
    query_handoff_min_lag: int = Field(100_000, ge=0, le=1_000_000_000)
    # Checkpoints served at once; more are answered 503 + Retry-After (the receiver replays).
    query_handoff_max_serves: int = Field(2, ge=1, le=64)
    # Bytes per second each served checkpoint is throttled to; 0: as fast as the network goes.
    query_handoff_rate_bytes: int = Field(0, ge=0, le=10**12)
    # A transfer not finished within this is abandoned for the log: a hand-off never holds up
    # readiness for longer. The socket's own timeout (no byte for a while) is a tenth of it.
    query_handoff_timeout_s: float = Field(120.0, gt=0, le=86_400)
