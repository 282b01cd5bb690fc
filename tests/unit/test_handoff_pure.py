"""The pure parts of a hand-off: the manifest's checks, the decision and source, the credential."""

from __future__ import annotations

import pytest

from query_service.cluster import credential
from query_service.cluster.handoff import Source, choose_source, wants_handoff
from query_service.cluster.model import ClusterView, Member, PartitionState
from query_service.exceptions import CheckpointRefused
from query_service.view.checkpoint import (
    MANIFEST_NAME,
    Expected,
    FileDigest,
    Manifest,
    check_file_name,
    verify,
)

FILES = {"CURRENT": FileDigest(16, "a" * 64), "000009.sst": FileDigest(4096, "b" * 64)}
EXPECTED = Expected(format="3", topic="orders", topic_id="id-1", partition=2)
GOOD = Manifest("3", "orders", "id-1", 2, 41, FILES)


def refused(manifest: Manifest | None, received: dict[str, FileDigest] = FILES) -> str:
    with pytest.raises(CheckpointRefused) as caught:
        verify(manifest, EXPECTED, received)
    assert caught.value.partition == 2
    return caught.value.reason


def test_a_matching_checkpoint_is_accepted() -> None:
    assert verify(GOOD, EXPECTED, dict(FILES)) == GOOD


def test_the_manifest_round_trips() -> None:
    assert Manifest.decode(GOOD.encode(), 2) == GOOD


def test_each_mismatch_is_refused_with_its_reason() -> None:
    assert "cut short" in refused(None)
    assert "format" in refused(Manifest("2", "orders", "id-1", 2, 41, FILES))
    assert "topic 'other'" in refused(Manifest("3", "other", "id-1", 2, 41, FILES))
    assert "topic id 'id-0'" in refused(Manifest("3", "orders", "id-0", 2, 41, FILES))
    assert "partition 3" in refused(Manifest("3", "orders", "id-1", 3, 41, FILES))
    assert "applied nothing" in refused(Manifest("3", "orders", "id-1", 2, -1, FILES))


def test_files_that_differ_from_the_manifest_are_refused() -> None:
    tampered = {**FILES, "000009.sst": FileDigest(4096, "c" * 64)}
    assert "SHA-256" in refused(GOOD, tampered)
    truncated = {**FILES, "000009.sst": FileDigest(1000, "b" * 64)}
    assert "bytes" in refused(GOOD, truncated)
    assert "not received" in refused(GOOD, {"CURRENT": FILES["CURRENT"]})
    assert "not in the manifest" in refused(GOOD, {**FILES, "000010.sst": FileDigest(1, "d")})
    no_current = {"000009.sst": FILES["000009.sst"]}
    assert "CURRENT" in refused(Manifest("3", "orders", "id-1", 2, 41, no_current), no_current)


def test_a_malformed_manifest_is_refused() -> None:
    with pytest.raises(CheckpointRefused, match="malformed"):
        Manifest.decode(b'{"format": "3"}', 2)
    with pytest.raises(CheckpointRefused, match="malformed"):
        Manifest.decode(b"not json", 2)


@pytest.mark.parametrize("name", ["../x", "a/b", "/etc/passwd", "", ".hidden", MANIFEST_NAME])
def test_file_names_outside_a_database_are_refused(name: str) -> None:
    with pytest.raises(CheckpointRefused):
        check_file_name(0, name)


def test_rocksdb_file_names_pass() -> None:
    for name in ("CURRENT", "MANIFEST-000005", "000012.sst", "OPTIONS-000007", "000004.log"):
        check_file_name(0, name)


def test_a_copy_is_handed_over_without_state_or_far_behind() -> None:
    assert wants_handoff(-1, 10, 100)
    assert not wants_handoff(-1, 0, 100)
    assert not wants_handoff(899, 1000, 100)  # 100 behind
    assert wants_handoff(898, 1000, 100)  # 101 behind
    assert wants_handoff(800, 1000, 100)


def view(members: list[Member]) -> ClusterView:
    return ClusterView("me", {m.instance_id: m for m in members}, 6, 1)


def member(name: str, partitions: dict[int, PartitionState], kept: dict[int, int]) -> Member:
    return Member(name, f"http://{name}", 0, partitions, True, "", kept)


def test_the_source_is_the_copy_that_has_applied_most() -> None:
    members = [
        member("me", {1: PartitionState(5000, 0, True)}, {}),
        member("a", {1: PartitionState(900, 0, True)}, {}),
        member("b", {}, {1: 950}),
        member("c", {1: PartitionState(10_000, 5, False)}, {}),  # not caught up: not asked
    ]
    assert choose_source(view(members), 1, -1, 100) == Source("b", "http://b", 950)
    assert choose_source(view(members), 1, 900, 100) is None  # not worth it
    assert choose_source(view(members), 2, -1, 100) is None


def test_the_credential_is_bound_to_secret_topic_partition_and_time() -> None:
    secret = b"s" * 32
    header = credential.sign(secret, "orders", 3, 1000.0)
    assert credential.verify(secret, header, "orders", 3, 1010.0)
    assert not credential.verify(b"t" * 32, header, "orders", 3, 1010.0)
    assert not credential.verify(secret, header, "orders", 4, 1010.0)
    assert not credential.verify(secret, header, "other", 3, 1010.0)
    assert not credential.verify(secret, header, "orders", 3, 1000.0 + 61)
    for bad in ("", "x", "1000.", "abc.def", f"Bearer {header}"):
        assert not credential.verify(secret, bad, "orders", 3, 1000.0)
