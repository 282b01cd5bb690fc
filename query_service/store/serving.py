"""The serving side of a hand-off: how many checkpoints are served at once, and each one taken,
streamed and deleted (who may fetch one: http/handoff.py, with cluster/credential.py).

`open` and the chunks run on worker threads (never the event loop): a checkpoint's hard links
and the files' reads are disk work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from query_service.exceptions import CheckpointUnavailable, HandoffBusy
from query_service.metrics import QueryMetrics
from query_service.settings import QuerySettings
from query_service.store.checkpoint import describe, remove, state_files, tar_chunks
from query_service.store.rocks import RocksPartitionStores

log = logging.getLogger(__name__)


class ServedCheckpoint:
    """One checkpoint on its way out: its chunks, then (however the response ends) its copy
    deleted and its place among the serves given back, once."""

    def __init__(
        self, server: CheckpointServer, partition: int, directory: Path, chunks: Iterator[bytes]
    ) -> None:
        # The files' bytes, told ahead so that a receiver can see early if it will not finish.
        self.state_bytes = sum(path.stat().st_size for path in state_files(directory))
        self._server = server
        self._partition = partition
        self._directory = directory
        self._chunks = chunks
        self._closed = False
        self._lock = threading.Lock()

    def chunks(self) -> Iterator[bytes]:
        rate = self._server.rate_bytes
        started = time.monotonic()
        sent = 0
        try:
            for chunk in self._chunks:
                yield chunk
                sent += len(chunk)
                if rate:
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            log.info(
                "served a checkpoint of partition %d: %d bytes in %.2f s",
                self._partition,
                sent,
                time.monotonic() - started,
            )
        finally:
            self._server.metrics.handoff_bytes.labels("sent").inc(sent)
            self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        remove(self._directory)
        self._server.given_back()


class CheckpointServer:
    """Checkpoints of this instance's partitions for the cluster's other instances."""

    def __init__(
        self,
        settings: QuerySettings,
        stores: RocksPartitionStores,
        metrics: QueryMetrics,
    ) -> None:
        self._stores = stores
        self.metrics = metrics
        self.rate_bytes = settings.query_handoff_rate_bytes
        self._cap = settings.query_handoff_max_serves
        self._serves = threading.BoundedSemaphore(self._cap)

    def open(self, partition: int) -> ServedCheckpoint:
        if not self._serves.acquire(blocking=False):
            raise HandoffBusy(self._cap)
        self.metrics.handoff_serves.inc()
        directory = self._stores.serving(partition)
        try:
            if not self._stores.checkpoint(partition, directory):
                raise CheckpointUnavailable(partition)
            manifest = describe(directory, partition)
        except BaseException:
            remove(directory)
            self.given_back()
            raise
        return ServedCheckpoint(self, partition, directory, tar_chunks(directory, manifest))

    def given_back(self) -> None:
        self.metrics.handoff_serves.dec()
        self._serves.release()
