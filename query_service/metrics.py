"""The query service's Prometheus metrics, in a registry of their own per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BATCH_SIZE_BUCKETS = (1, 10, 100, 500, 1000, 2000, 5000, 10_000, 50_000)


class QueryMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.applied_offset = Gauge(
            "query_applied_offset", "Last offset applied to the view", ["partition"], registry=r
        )
        self.lag = Gauge(
            "query_partition_lag",
            "Records on the topic not yet in the view",
            ["partition"],
            registry=r,
        )
        self.events_applied = Counter(
            "query_events_applied", "Valid events folded (duplicates included)", registry=r
        )
        self.duplicates = Counter(
            "query_duplicate_events", "Events whose order the view already held", registry=r
        )
        self.dead_lettered = Counter(
            "query_dead_lettered_records",
            "Records sent to the dead-letter topic",
            ["kind"],
            registry=r,
        )
        self.batch_size = Histogram(
            "query_batch_size",
            "Records per applied batch",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "query_batch_seconds", "Time to decode, project and commit one batch", registry=r
        )
        # Observed once per partition and batch (not per event: the ingest's hot loop), with the
        # batch's oldest event, so a quantile of it bounds every event's.
        self.freshness = Histogram(
            "query_freshness_seconds",
            "From an event's produce time (its record's timestamp) until its batch was applied, "
            "for the oldest event of each partition's batch",
            ["partition"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=r,
        )
        self.delta_freshness = Histogram(
            "query_delta_freshness_seconds",
            "From the produce time of the oldest event of a delta's batch (its partition's) "
            "until the delta went out on a stream",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.request_seconds = Histogram(
            "query_request_seconds",
            "HTTP request latency (to the response start)",
            ["method", "route", "status"],
            registry=r,
        )
        self.ready = Gauge(
            "query_ready", "1 while caught up with every partition it holds", registry=r
        )
        self.paused = Gauge(
            "query_paused_partitions",
            "1 for a partition stopped at an event newer than this code: upgrade the service",
            ["partition"],
            registry=r,
        )
        self.partitions_held = Gauge(
            "query_partitions_held", "Partitions this instance folds and serves", registry=r
        )
        self.partitions_moved = Counter(
            "query_partition_moves", "Partitions taken up or let go by placement", registry=r
        )
        self.forwarded = Counter(
            "query_forwarded_requests",
            "Reads forwarded to another instance, by outcome status",
            ["status"],
            registry=r,
        )
        self.forward_seconds = Histogram(
            "query_forward_seconds", "Latency of reads forwarded to another instance", registry=r
        )
        self.handoffs = Counter(
            "query_handoffs",
            "Partitions taken up that asked for a checkpoint, by outcome: installed, or built "
            "from the log after refused (a bad copy or a refusing source), failed (transfer), "
            "no_source (no caught-up copy to ask)",
            ["outcome"],
            registry=r,
        )
        self.handoff_bytes = Counter(
            "query_handoff_bytes",
            "Checkpoint bytes received and sent",
            ["direction"],
            registry=r,
        )
        self.handoff_seconds = Histogram(
            "query_handoff_seconds",
            "From asking for a checkpoint to its copy installed or given up",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.handoffs_in_progress = Gauge(
            "query_handoffs_in_progress", "Checkpoints being received", registry=r
        )
        self.handoff_serves = Gauge(
            "query_handoff_serves", "Checkpoints being served to other instances", registry=r
        )
        self.sse_subscribers = Gauge("query_sse_subscribers", "Open items streams", registry=r)
        self.ryw_waiters = Gauge(
            "query_read_your_writes_waiters", "Requests waiting for a token's offset", registry=r
        )
