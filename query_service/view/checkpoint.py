"""A handed-over partition's manifest and the checks a receiver makes before opening it. Pure.

A checkpoint travels as a tar of the partition's RocksDB files followed, last, by MANIFEST_NAME:
what the copy is (format, topic, the topic's Kafka id, partition, applied offset) and every
file's size and SHA-256. A transfer cut short therefore has no manifest, and any file changed on
the way fails its digest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from query_service.exceptions import CheckpointRefused

MANIFEST_NAME: Final = "handoff-manifest.json"
# RocksDB's file names (000012.sst, MANIFEST-000005, CURRENT, OPTIONS-000007, 000004.log):
# anything else, a path above all, is refused before it is written.
_FILE_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True, slots=True)
class FileDigest:
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    format: str
    topic: str
    topic_id: str
    partition: int
    applied_offset: int
    files: Mapping[str, FileDigest]

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "format": self.format,
                "topic": self.topic,
                "topic_id": self.topic_id,
                "partition": self.partition,
                "applied_offset": self.applied_offset,
                "files": {
                    name: {"size": d.size, "sha256": d.sha256}
                    for name, d in sorted(self.files.items())
                },
            }
        )

    @classmethod
    def decode(cls, raw: bytes, partition: int) -> Manifest:
        try:
            body: dict[str, Any] = orjson.loads(raw)
            return cls(
                format=str(body["format"]),
                topic=str(body["topic"]),
                topic_id=str(body["topic_id"]),
                partition=int(body["partition"]),
                applied_offset=int(body["applied_offset"]),
                files={
                    str(name): FileDigest(int(d["size"]), str(d["sha256"]))
                    for name, d in body["files"].items()
                },
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointRefused(partition, f"malformed manifest ({exc})") from exc


@dataclass(frozen=True, slots=True)
class Expected:
    """What the receiving instance needs the copy to be."""

    format: str
    topic: str
    topic_id: str
    partition: int


def check_file_name(partition: int, name: str) -> None:
    if name == MANIFEST_NAME or not _FILE_NAME.match(name):
        raise CheckpointRefused(partition, f"unexpected file {name!r} in the checkpoint")


def verify(
    manifest: Manifest | None, expected: Expected, received: Mapping[str, FileDigest]
) -> Manifest:
    """The manifest, if the copy is what `expected` asks for and `received` (every file as it
    arrived) is exactly what the manifest lists; CheckpointRefused naming the first mismatch."""
    partition = expected.partition
    if manifest is None:
        raise CheckpointRefused(partition, "no manifest: the transfer was cut short")
    if manifest.format != expected.format:
        raise CheckpointRefused(
            partition, f"format {manifest.format!r}, this code reads {expected.format!r}"
        )
    if manifest.topic != expected.topic:
        raise CheckpointRefused(partition, f"a copy of topic {manifest.topic!r}")
    if manifest.topic_id != expected.topic_id:
        raise CheckpointRefused(
            partition,
            f"a copy of topic id {manifest.topic_id!r}, this topic's id is {expected.topic_id!r}",
        )
    if manifest.partition != partition:
        raise CheckpointRefused(partition, f"a copy of partition {manifest.partition}")
    if manifest.applied_offset < 0:
        raise CheckpointRefused(partition, "a copy that has applied nothing")
    for name, digest in sorted(manifest.files.items()):
        got = received.get(name)
        if got is None:
            raise CheckpointRefused(partition, f"{name} listed but not received")
        if got.size != digest.size:
            raise CheckpointRefused(
                partition, f"{name} is {got.size} bytes, the manifest says {digest.size}"
            )
        if got.sha256 != digest.sha256:
            raise CheckpointRefused(partition, f"{name} fails its SHA-256")
    extra = sorted(set(received) - set(manifest.files))
    if extra:
        raise CheckpointRefused(partition, f"files not in the manifest: {extra}")
    if "CURRENT" not in manifest.files:
        raise CheckpointRefused(partition, "no CURRENT file: not a RocksDB database")
    return manifest
