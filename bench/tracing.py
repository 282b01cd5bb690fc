"""§12 of `make bench`: what tracing costs, on against off, in one run.

Spans go over OTLP/HTTP to a sink in the benchmark's process that reads and discards them (it
answers as a collector does), so that the figure is the services' cost, not a backend's.

- ingest: the same events (each with a W3C `traceparent`, as the command service writes them
  with tracing on) folded from an empty state dir by a query service with tracing off, with
  every event's trace sampled, and with 1 in 100 sampled (parent-based: the query side follows
  the flag the POST's sampler set);
- commands: `POST /orders` at full speed (wrk, 64 connections) with tracing off, sampling every
  request, and sampling 1 in 100.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Final

from devtools.otlp import OtlpReceiver

LOW_RATIO: Final = 0.01
MODES: Final = ("off", "all", "low")


def tracing_env(sink: OtlpReceiver, mode: str) -> dict[str, str]:
    """A service's OTEL_* settings for `mode`: off, every trace sampled, or 1 in 100."""
    if mode == "off":
        return {}
    ratio = "1.0" if mode == "all" else str(LOW_RATIO)
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": ratio,
    }


def traceparents(sampled_ratio: float, seed: int) -> Iterator[bytes]:
    """An endless run of W3C traceparents, each sampled with probability `sampled_ratio`."""
    rng = random.Random(seed)
    while True:
        flags = "01" if rng.random() < sampled_ratio else "00"
        yield f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-{flags}".encode()
