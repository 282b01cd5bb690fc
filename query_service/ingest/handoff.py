"""The receiving side of a hand-off, on the consumer thread: ask a caught-up copy for a
checkpoint of a partition just taken up, receive it beside the partition's state, check it and
rename it into place; on any refusal or failure, one WARNING and the partition is built from the
log as before.

The transfer is bounded (QUERY_HANDOFF_TIMEOUT_S in all, a tenth of it without a byte), so a
hand-off never holds readiness up for longer than that before the log takes over.
"""

from __future__ import annotations

import http.client
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from query_service.cluster import credential
from query_service.cluster.credential import CLUSTER_AUTH_HEADER, STATE_BYTES_HEADER
from query_service.cluster.handoff import Source, choose_source, wants_handoff
from query_service.cluster.model import ClusterView
from query_service.exceptions import CheckpointRefused, StateDirError
from query_service.metrics import QueryMetrics
from query_service.ports import HandoffProgress
from query_service.settings import QuerySettings
from query_service.store.checkpoint import receive_tar, remove
from query_service.store.rocks import RocksPartitionStores
from query_service.view.checkpoint import Expected
from query_service.view.layout import FORMAT

log = logging.getLogger(__name__)

CHECKPOINT_PATH: Final = "/internal/partitions/{}/checkpoint"
# How often the progress /cluster shows is swapped in (and the rate checked).
PROGRESS_BYTES: Final = 4 * 1024 * 1024
# A transfer's rate is judged once it has run this long.
EARLY_CHECK_S: Final = 2.0


class _Transfer:
    """The response body as tarfile reads it: each read bounded by the socket's timeout, all of
    them by the deadline, which is also checked ahead (at the rate so far, the size the sender
    announced would not arrive in time: given up at once); the bytes counted."""

    def __init__(
        self,
        response: http.client.HTTPResponse,
        started: float,
        timeout: float,
        counted: Callable[[int], None],
    ) -> None:
        self._response = response
        self._started = started
        self._timeout = timeout
        self._counted = counted
        announced = response.getheader(STATE_BYTES_HEADER, "")
        self._expected = int(announced) if announced.isdigit() else 0
        self.received = 0
        self._reported = 0

    def read(self, size: int = -1) -> bytes:
        elapsed = time.monotonic() - self._started
        if elapsed > self._timeout:
            raise TimeoutError(f"not received within QUERY_HANDOFF_TIMEOUT_S={self._timeout:g}")
        chunk = self._response.read(size)
        self.received += len(chunk)
        if self.received - self._reported >= PROGRESS_BYTES:
            self._reported = self.received
            self._counted(self.received)
            if elapsed >= EARLY_CHECK_S and self._expected:
                projected = self._expected * elapsed / self.received
                if projected > self._timeout:
                    raise TimeoutError(
                        f"at {self.received / elapsed / 2**20:.1f} MiB/s, {self._expected:,} "
                        f"bytes would take {projected:.0f} s, over QUERY_HANDOFF_TIMEOUT_S"
                    )
        return chunk


class HandoffReceiver:
    """The `Handoff` port over HTTP (http.client) and the RocksDB stores. `receive` runs on the
    consumer thread; `in_progress` is read from any thread (a dict swapped whole)."""

    def __init__(
        self,
        settings: QuerySettings,
        stores: RocksPartitionStores,
        view: Callable[[], ClusterView],
        metrics: QueryMetrics,
        secret: bytes,
    ) -> None:
        self._settings = settings
        self._stores = stores
        self._view = view
        self._metrics = metrics
        self._secret = secret
        self._progress: dict[int, HandoffProgress] = {}

    def in_progress(self) -> Mapping[int, HandoffProgress]:
        return self._progress

    def receive(self, partition: int, applied: int, end: int, topic_id: str) -> bool:
        min_lag = self._settings.query_handoff_min_lag
        if not wants_handoff(applied, end, min_lag):
            return False
        source = choose_source(self._view(), partition, applied, min_lag)
        if source is None:
            self._metrics.handoffs.labels("no_source").inc()
            log.info(
                "partition %d: no caught-up copy to hand it over; building it from the log",
                partition,
            )
            return False
        started = time.monotonic()
        self._progress = {
            **self._progress,
            partition: HandoffProgress(source.instance_id, 0, started),
        }
        self._metrics.handoffs_in_progress.inc()
        incoming = self._stores.incoming(partition)
        outcome = "failed"
        try:
            offset = self._fetch(partition, source, topic_id, incoming, started)
            self._stores.install(partition, incoming)
            outcome = "installed"
            log.info(
                "partition %d handed over by %s at offset %d in %.2f s (instead of replaying %d "
                "events)",
                partition,
                source.instance_id,
                offset,
                time.monotonic() - started,
                offset - applied,
            )
            return True
        except CheckpointRefused as exc:
            outcome = "refused"
            log.warning("%s (from %s); falling back to replay from the log", exc, source.url)
        except (OSError, http.client.HTTPException, StateDirError) as exc:
            log.warning(
                "checkpoint of partition %d from %s failed: %r; falling back to replay from the "
                "log",
                partition,
                source.url,
                exc,
            )
        finally:
            remove(incoming)
            self._metrics.handoffs.labels(outcome).inc()
            self._metrics.handoff_seconds.observe(time.monotonic() - started)
            self._metrics.handoffs_in_progress.dec()
            self._progress = {p: s for p, s in self._progress.items() if p != partition}
        return False

    def _fetch(
        self, partition: int, source: Source, topic_id: str, incoming: Path, started: float
    ) -> int:
        settings = self._settings
        timeout = settings.query_handoff_timeout_s
        url = urlsplit(source.url)
        connection_type = (
            http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_type(url.netloc, timeout=max(timeout / 10, 1.0))
        try:
            header = credential.sign(self._secret, settings.orders_topic, partition, time.time())
            connection.request(
                "GET", CHECKPOINT_PATH.format(partition), headers={CLUSTER_AUTH_HEADER: header}
            )
            response = connection.getresponse()
            if response.status != 200:
                detail = response.read(2000).decode(errors="replace")
                raise CheckpointRefused(
                    partition, f"{source.instance_id} answered {response.status} {detail}"
                )

            def counted(received: int) -> None:
                self._progress = {
                    **self._progress,
                    partition: HandoffProgress(source.instance_id, received, started),
                }

            body = _Transfer(response, started, timeout, counted)
            try:
                expected = Expected(FORMAT.decode(), settings.orders_topic, topic_id, partition)
                manifest = receive_tar(body, incoming, expected)
            finally:
                self._metrics.handoff_bytes.labels("received").inc(body.received)
            return manifest.applied_offset
        finally:
            connection.close()
