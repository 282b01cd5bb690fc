"""What one more event costs the ingest: applied in-process, as a batch of its own, on the
stores a benchmark's query service left behind."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench import workload
from devtools.fakes import FakeMessage
from query_service.ingest.batch import Ingest
from query_service.metrics import QueryMetrics
from query_service.ports import DeadLetter
from query_service.store.rocks import RocksPartitionStores
from query_service.view.partitioning import partition_for
from shared.entrypoint import settle_heap


class NoDeadLetters:
    """The workload's events are all valid: a dead letter means the benchmark is wrong."""

    def send(self, letters: Sequence[DeadLetter]) -> None:
        raise RuntimeError(f"the benchmark's events were dead-lettered: {letters[:1]}")

    def close(self) -> None:
        pass


def event_cost(
    stores: RocksPartitionStores, topic: str, topic_id: str, partitions: int, samples: int
) -> dict[str, Any]:
    """Median microseconds to apply one event as a batch of its own: a new order of the big
    user, against the first order of a new user, taken in turns on the same stores."""
    ingest = Ingest(stores, NoDeadLetters(), QueryMetrics())
    next_offset = {p: ingest.take(p, topic_id) + 1 for p in range(partitions)}
    owned = set(range(partitions))

    def record(key: str, value: bytes) -> FakeMessage:
        partition = partition_for(key, partitions)
        offset = next_offset[partition]
        next_offset[partition] += 1
        return FakeMessage(topic, partition, offset, value, key.encode())

    big = workload.order_values(samples, 1, seed=21, prefix="big")
    new = workload.order_values(samples, samples, seed=22, prefix="new")
    timings: dict[str, list[float]] = {"big": [], "new": []}
    thresholds = gc.get_threshold()
    settle_heap()  # the garbage collector as the service runs it
    try:
        for i, pair in enumerate(zip(big, new, strict=True)):
            turns = zip(("big", "new"), pair, strict=True)
            for name, (key, value) in turns if i % 2 else reversed(list(turns)):
                message = record(key, value)
                started = time.perf_counter()
                ingest.process([message], owned)
                timings[name].append(time.perf_counter() - started)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    return {
        "samples": samples,
        "big_us": round(statistics.median(timings["big"]) * 1e6, 1),
        "new_us": round(statistics.median(timings["new"]) * 1e6, 1),
        "big_p90_us": round(statistics.quantiles(timings["big"], n=10)[8] * 1e6, 1),
        "new_p90_us": round(statistics.quantiles(timings["new"], n=10)[8] * 1e6, 1),
    }
