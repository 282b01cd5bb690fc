"""The command service's Prometheus metrics, in a registry of their own per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Acknowledgements take a few milliseconds on a healthy cluster and at most the ack timeout.
REJECTION_REASONS = ("validation", "malformed_json", "unsupported_media_type", "too_large")
ACK_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class CommandMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.accepted = Counter(
            "orders_accepted",
            "Orders acknowledged by Kafka and answered 201.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "orders_rejected",
            "Order requests refused before publishing, by reason.",
            ["reason"],
            registry=self.registry,
        )
        for reason in REJECTION_REASONS:  # exported as zeros before the first refusal
            self.rejected.labels(reason=reason)
        self.unavailable = Counter(
            "orders_unavailable",
            "Orders answered 503: Kafka did not acknowledge them in time.",
            registry=self.registry,
        )
        self.ack_latency = Histogram(
            "order_ack_latency_seconds",
            "From handing an event to the producer to its ack.",
            buckets=ACK_LATENCY_BUCKETS,
            registry=self.registry,
        )
