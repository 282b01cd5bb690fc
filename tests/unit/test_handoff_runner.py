"""The runner with a hand-off: a partition taken up with no state is asked for first, and
consumed from the installed copy's offset on (nothing before it is folded again); over the fakes
of test_query_api, a fake hand-off copying another instance's in-memory store."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from query_service.ports import HandoffProgress
from query_service.settings import QuerySettings
from query_service.view.layout import offset_key
from query_service.view.partitioning import partition_for
from tests.factories import order
from tests.query_fakes import FakeLog, MemoryPartitionStore, MemoryPartitionStores, app_over_fakes

PARTITIONS = 3
USERS = [f"user-{i}" for i in range(30)]


class CopyingHandoff:
    """Hands over `source`'s copy of a partition as it stands."""

    def __init__(self, source: MemoryPartitionStores, target: MemoryPartitionStores) -> None:
        self._source = source
        self._target = target
        self.asked: list[tuple[int, int, int]] = []

    def receive(self, partition: int, applied: int, end: int, topic_id: str) -> bool:
        self.asked.append((partition, applied, end))
        copy = MemoryPartitionStore()
        copy.data = dict(self._source.stores[partition].data)
        offset = self._source.stores[partition].applied_offsets()[partition]
        copy.load_offsets([(offset_key(partition), str(offset).encode())])
        self._target.stores[partition] = copy
        return True

    def in_progress(self) -> Mapping[int, HandoffProgress]:
        return {}


def settings(tmp_path: Path, name: str) -> QuerySettings:
    return QuerySettings(
        orders_topic_partitions=PARTITIONS,
        query_state_dir=tmp_path / name,
        query_batch_timeout_ms=10,
        query_instance_id=name,
        auth_disabled=True,
    )


def wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 10
    while client.get("/health/ready").status_code != 200:
        assert time.monotonic() < deadline, "never ready"
        time.sleep(0.01)


def applied(app: FastAPI) -> float:
    value: float = app.state.services.metrics.events_applied._value.get()
    return value


def test_a_partition_without_state_resumes_from_the_handed_over_copy(tmp_path: Path) -> None:
    log = FakeLog("orders", PARTITIONS)
    for user in USERS * 2:
        log.append_event(partition_for(user, PARTITIONS), order(user, ("S1", 250, 1)))
    a_stores, b_stores = MemoryPartitionStores(), MemoryPartitionStores()
    a = app_over_fakes(settings(tmp_path, "a"), log, stores=a_stores)
    handoff = CopyingHandoff(a_stores, b_stores)
    b = app_over_fakes(settings(tmp_path, "b"), log, stores=b_stores, handoff=handoff)
    with TestClient(a) as a_client:
        wait_ready(a_client)
        with TestClient(b) as b_client:
            wait_ready(b_client)
            ends = [len(records) for records in log.records]
            assert sorted(handoff.asked) == [(p, -1, ends[p]) for p in range(PARTITIONS)]
            assert applied(b) == 0  # nothing folded again
            for user in USERS:
                path = f"/users/{user}/items"
                assert b_client.get(path).json() == a_client.get(path).json()
            log.append_event(partition_for("late", PARTITIONS), order("late", ("S2", 100, 2)))
            deadline = time.monotonic() + 10
            while applied(b) < 1 or not b_client.get("/users/late/orders").json()["orders"]:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert applied(b) == 1
