"""A partition handed over on real RocksDB: checkpoint, tar, receive and check, install, open;
and each way a received copy is refused before anything opens it."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from query_service.exceptions import CheckpointRefused
from query_service.store.checkpoint import describe, receive_tar, tar_bytes
from query_service.store.rocks import RocksPartitionStores
from query_service.view.checkpoint import MANIFEST_NAME, Expected
from query_service.view.layout import FORMAT
from tests.integration.test_store import event, fold

TOPIC_ID = "topic-id-1"
EXPECTED = Expected(FORMAT.decode(), "orders", TOPIC_ID, 2)


def filled(version: Path, partition: int = 2) -> RocksPartitionStores:
    stores = RocksPartitionStores(version, "orders")
    store = stores.open(partition)
    store.bind_topic(TOPIC_ID)
    for offset in range(0, 50, 10):
        store.commit(
            fold(store, [event(f"user-{offset}-{i}") for i in range(10)]), {partition: offset}
        )
    return stores


def checkpoint_tar(stores: RocksPartitionStores, tmp_path: Path, partition: int = 2) -> bytes:
    copy = tmp_path / "copy"
    assert stores.checkpoint(partition, copy)
    return tar_bytes(copy, describe(copy, partition))


def test_a_checkpoint_arrives_installs_and_opens_with_its_offset(tmp_path: Path) -> None:
    source = filled(tmp_path / "a")
    tar = checkpoint_tar(source, tmp_path)
    source.get(2).commit(fold(source.get(2), [event("later")]), {2: 60})  # type: ignore[union-attr]
    target = RocksPartitionStores(tmp_path / "b", "orders")
    incoming = target.incoming(2)
    manifest = receive_tar(io.BytesIO(tar), incoming, EXPECTED)
    assert manifest.applied_offset == 40
    assert MANIFEST_NAME not in {p.name for p in incoming.iterdir()}
    target.install(2, incoming)
    store = target.open(2)
    assert store.applied_offsets() == {2: 40}
    reader = store.reader()
    assert reader.summaries("user-40-3", ["affordable"])["affordable"] is not None
    assert reader.summaries("later", ["affordable"])["affordable"] is None


def test_a_kept_partition_can_be_handed_over(tmp_path: Path) -> None:
    source = filled(tmp_path / "a")
    source.close_partition(2)
    manifest = receive_tar(io.BytesIO(checkpoint_tar(source, tmp_path)), tmp_path / "in", EXPECTED)
    assert manifest.applied_offset == 40
    assert not source.checkpoint(5, tmp_path / "none")


def refused(tar: bytes, tmp_path: Path, expected: Expected = EXPECTED) -> str:
    incoming = tmp_path / "incoming"
    with pytest.raises(CheckpointRefused) as caught:
        receive_tar(io.BytesIO(tar), incoming, expected)
    return caught.value.reason


def test_a_tampered_byte_is_refused(tmp_path: Path) -> None:
    tar = bytearray(checkpoint_tar(filled(tmp_path / "a"), tmp_path))
    with tarfile.open(fileobj=io.BytesIO(bytes(tar))) as archive:
        sst = next(m for m in archive.getmembers() if m.name.endswith(".sst"))
    tar[sst.offset_data + sst.size // 2] ^= 0x01
    assert "SHA-256" in refused(bytes(tar), tmp_path)


def test_a_transfer_cut_short_is_refused(tmp_path: Path) -> None:
    tar = checkpoint_tar(filled(tmp_path / "a"), tmp_path)
    for cut in (len(tar) // 3, len(tar) - 3000):
        reason = refused(tar[:cut], tmp_path / str(cut))
        assert "tar" in reason or "cut short" in reason


@pytest.mark.parametrize(
    ("expected", "reason"),
    [
        (Expected(FORMAT.decode(), "orders", "another-id", 2), "topic id"),
        (Expected(FORMAT.decode(), "orders", TOPIC_ID, 3), "partition 2"),
        (Expected("9", "orders", TOPIC_ID, 2), "format"),
        (Expected(FORMAT.decode(), "payments", TOPIC_ID, 2), "topic"),
    ],
)
def test_a_copy_of_something_else_is_refused(
    tmp_path: Path, expected: Expected, reason: str
) -> None:
    tar = checkpoint_tar(filled(tmp_path / "a"), tmp_path)
    assert reason in refused(tar, tmp_path, expected)


def test_a_stale_incoming_copy_is_deleted_at_start(tmp_path: Path) -> None:
    version = tmp_path / "v"
    stores = RocksPartitionStores(version, "orders")
    stale = stores.incoming(1)
    stale.mkdir(parents=True)
    (stale / "000001.sst").write_bytes(b"half")
    RocksPartitionStores(version, "orders")
    assert not stale.exists()
