"""Hand-off over real HTTP and real RocksDB: an instance (the real app over a fake log) serves
checkpoints on a real listener; another takes its partitions up by hand-off and answers the same
view. And a receiver against a server that hands over bad or truncated tars falls back, leaving
nothing behind."""

from __future__ import annotations

import http.server
import io
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from query_service.cluster.model import ClusterView, Member, PartitionState
from query_service.ingest.handoff import HandoffReceiver
from query_service.metrics import QueryMetrics
from query_service.ports import MembershipFactory, Placeable
from query_service.settings import QuerySettings
from query_service.store.checkpoint import describe, tar_bytes
from query_service.store.rocks import RocksPartitionStores
from query_service.view.partitioning import partition_for
from tests.integration.test_store import event, fold
from tests.query_fakes import FakeLog, SoloMembership, app_over_fakes

SECRET = "s" * 40
PARTITIONS = 3
TOPIC_ID = "test-topic-id"  # what app_over_fakes' provisioner says
USERS = [f"user-{i}" for i in range(60)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def settings(tmp_path: Path, name: str, **overrides: Any) -> QuerySettings:
    return QuerySettings(
        orders_topic_partitions=PARTITIONS,
        query_state_dir=tmp_path / name,
        query_batch_timeout_ms=10,
        query_instance_id=name,
        query_cluster_secret=SECRET,
        auth_disabled=True,
        **overrides,
    )


def filled_log() -> FakeLog:
    log = FakeLog("orders", PARTITIONS)
    for round_ in range(3):
        for user in USERS:
            log.append_event(partition_for(user, PARTITIONS), event(user, price=500 + round_))
    return log


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, FakeLog, FastAPI]]:
    """Instance `a`, caught up on the log, on a real HTTP listener."""
    log = filled_log()
    port = free_port()
    cfg = settings(tmp_path, "a", query_port=port)
    app = app_over_fakes(cfg, log, stores=RocksPartitionStores(tmp_path / "a-v", "orders"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started or not app.state.services.health.holding().ready:
        assert time.monotonic() < deadline, "instance a never became ready"
        time.sleep(0.02)
    yield url, log, app
    server.should_exit = True
    thread.join(10)


def beside(source: Member) -> MembershipFactory:
    """A membership in which `source` is the other member."""

    class Beside(SoloMembership):
        def view(self) -> ClusterView:
            mine = super().view()
            return ClusterView(
                mine.me, {**mine.members, source.instance_id: source}, mine.partitions, 1
            )

    def make(cfg: QuerySettings, own: Callable[[], Member], runner: Placeable) -> SoloMembership:
        return Beside(cfg, own, runner)

    return make


def source_member(url: str, app: FastAPI) -> Member:
    holding = app.state.services.health.holding()
    return Member(
        "a",
        url,
        0,
        {p: PartitionState(s.applied, 0, True) for p, s in holding.partitions.items()},
        True,
    )


def test_a_new_instance_takes_its_partitions_by_hand_off(
    tmp_path: Path, served: tuple[str, FakeLog, FastAPI]
) -> None:
    url, log, a_app = served
    b = app_over_fakes(
        settings(tmp_path, "b"),
        log,
        stores=RocksPartitionStores(tmp_path / "b-v", "orders"),
        membership=beside(source_member(url, a_app)),
    )
    with TestClient(b) as client, TestClient(a_app) as a:
        deadline = time.monotonic() + 20
        while client.get("/health/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        metrics: QueryMetrics = b.state.services.metrics
        installed = metrics.registry.get_sample_value(
            "query_handoffs_total", {"outcome": "installed"}
        )
        assert installed == PARTITIONS
        assert metrics.events_applied._value.get() == 0  # nothing replayed
        for user in USERS:
            assert client.get(f"/users/{user}/items").json() == a.get(f"/users/{user}/items").json()
        # Then it goes on applying the log.
        log.append_event(partition_for("late", PARTITIONS), event("late"))
        deadline = time.monotonic() + 10
        while not client.get("/users/late/orders").json()["orders"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)


class Tampering(http.server.BaseHTTPRequestHandler):
    """Serves whatever `body` the test sets, as a checkpoint."""

    body: bytes = b""
    status: int = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "application/x-tar")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def bad_server() -> Iterator[tuple[str, type[Tampering]]]:
    handler = type("Handler", (Tampering,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()


def good_tar(tmp_path: Path, partition: int) -> bytes:
    stores = RocksPartitionStores(tmp_path / "src", "orders")
    store = stores.open(partition)
    store.bind_topic(TOPIC_ID)
    store.commit(fold(store, [event("u1"), event("u2")]), {partition: 7})
    copy = tmp_path / "copy"
    stores.checkpoint(partition, copy)
    return tar_bytes(copy, describe(copy, partition))


def tampered(tar: bytes) -> bytes:
    data = bytearray(tar)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        sst = next(m for m in archive.getmembers() if m.name.endswith(".sst"))
    data[sst.offset_data + 10] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize(
    ("shape", "outcome"),
    [
        ("good", "installed"),
        ("tampered", "refused"),
        ("truncated", "refused"),
        ("empty", "refused"),
        ("forbidden", "refused"),
    ],
)
def test_the_receiver_installs_only_a_copy_that_passes(
    tmp_path: Path,
    bad_server: tuple[str, type[Tampering]],
    shape: str,
    outcome: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, handler = bad_server
    tar = good_tar(tmp_path, 1)
    handler.body = {
        "good": tar,
        "tampered": tampered(tar),
        "truncated": tar[: len(tar) // 2],
        "empty": b"",
        "forbidden": b'{"detail": "no"}',
    }[shape]
    handler.status = 403 if shape == "forbidden" else 200
    version = tmp_path / "target"
    stores = RocksPartitionStores(version, "orders")
    metrics = QueryMetrics()
    source = Member("src", url, 0, {1: PartitionState(7, 0, True)}, True)
    view = ClusterView("me", {"src": source}, PARTITIONS, 1)
    receiver = HandoffReceiver(
        settings(tmp_path, "me"), stores, lambda: view, metrics, SECRET.encode()
    )
    installed = receiver.receive(1, -1, 8, TOPIC_ID)
    assert installed is (outcome == "installed")
    assert metrics.registry.get_sample_value("query_handoffs_total", {"outcome": outcome}) == 1
    assert not list(version.glob("*.incoming-*"))
    if installed:
        assert stores.open(1).applied_offsets() == {1: 7}
    else:
        assert "falling back to replay" in caplog.text
        assert not (version / "partition-1").exists()
    assert receiver.in_progress() == {}


def test_an_unreachable_source_falls_back(tmp_path: Path) -> None:
    stores = RocksPartitionStores(tmp_path / "v", "orders")
    metrics = QueryMetrics()
    source = Member("src", f"http://127.0.0.1:{free_port()}", 0, {1: PartitionState(7, 0, True)})
    view = ClusterView("me", {"src": source}, PARTITIONS, 1)
    receiver = HandoffReceiver(settings(tmp_path, "me"), stores, lambda: view, metrics, b"k" * 32)
    assert not receiver.receive(1, -1, 8, TOPIC_ID)
    assert metrics.registry.get_sample_value("query_handoffs_total", {"outcome": "failed"}) == 1
