"""A partition's RocksDB database as a checkpoint that travels: taken, streamed as a tar with
its manifest last, received into a directory beside the partition's and checked.

Serving side: `take` makes a consistent copy (rocksdict's Checkpoint: hard links of the SST
files, ingest not paused) and reads what it is from the copy itself; `tar_chunks` streams it.
Receiving side: `receive_tar` writes each file as it arrives, hashing it, then checks the
manifest (view/checkpoint.py); `RocksPartitionStores.install` renames the result into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final, Protocol, cast

from rocksdict import AccessType, Options, Rdict

from query_service.exceptions import CheckpointRefused
from query_service.view.checkpoint import (
    MANIFEST_NAME,
    Expected,
    FileDigest,
    Manifest,
    check_file_name,
    verify,
)
from query_service.view.layout import FORMAT_KEY, TOPIC_ID_KEY, TOPIC_KEY, offset_key

CHUNK_BYTES: Final = 1024 * 1024
_BLOCK: Final = tarfile.BLOCKSIZE
# Files of a database that are the process's own, not its state.
_NOT_STATE: Final = ("LOCK", "LOG")
MAX_MANIFEST_BYTES: Final = 16 * 1024 * 1024


class Readable(Protocol):
    """A byte stream, as the tar is read from (a file, an HTTP response)."""

    def read(self, size: int = -1, /) -> bytes: ...


def state_files(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.iterdir()
        if path.is_file() and not path.name.startswith(_NOT_STATE)
    )


def describe(directory: Path, partition: int) -> Manifest:
    """What the copy in `directory` is, read from the copy (opened read-only); its files' digests
    are filled in as they are streamed."""
    db = Rdict(str(directory), Options(raw_mode=True), access_type=AccessType.read_only())
    keys: list[Any] = [FORMAT_KEY, TOPIC_KEY, TOPIC_ID_KEY, offset_key(partition)]
    try:
        values = cast(list[bytes | None], db.get(keys))
    finally:
        db.close()
    fmt, topic, topic_id, offset = values
    return Manifest(
        format=(fmt or b"").decode(),
        topic=(topic or b"").decode(),
        topic_id=(topic_id or b"").decode(),
        partition=partition,
        applied_offset=int(offset) if offset is not None else -1,
        files={},
    )


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def tar_chunks(directory: Path, manifest: Manifest) -> Iterator[bytes]:
    """The copy's files as one uncompressed tar (SST blocks barely compress and the CPU is the
    serving instance's), the manifest with every file's size and SHA-256 last."""
    digests: dict[str, FileDigest] = {}
    for path in state_files(directory):
        size = path.stat().st_size
        yield _header(path.name, size)
        digest = hashlib.sha256()
        sent = 0
        with path.open("rb") as source:
            while sent < size:
                chunk = source.read(min(CHUNK_BYTES, size - sent))
                if not chunk:
                    raise OSError(f"{path} shrank while it was sent")
                digest.update(chunk)
                sent += len(chunk)
                yield chunk
        yield _padding(size)
        digests[path.name] = FileDigest(size, digest.hexdigest())
    body = Manifest(
        manifest.format,
        manifest.topic,
        manifest.topic_id,
        manifest.partition,
        manifest.applied_offset,
        digests,
    ).encode()
    yield _header(MANIFEST_NAME, len(body))
    yield body + _padding(len(body))
    yield b"\0" * (2 * _BLOCK)


def receive_tar(stream: Readable, directory: Path, expected: Expected) -> Manifest:
    """Write the tar read from `stream` into `directory` (made here), each file hashed as it is
    written; the manifest if the copy passes every check, else CheckpointRefused. Whatever
    happens, a database is only ever opened from a directory this returned for."""
    partition = expected.partition
    directory.mkdir(parents=True)
    received: dict[str, FileDigest] = {}
    manifest: Manifest | None = None
    try:
        with tarfile.open(fileobj=cast(IO[bytes], stream), mode="r|") as archive:
            for member in archive:
                if manifest is not None:
                    raise CheckpointRefused(partition, "data after the manifest")
                if not member.isfile():
                    raise CheckpointRefused(partition, f"{member.name!r} is not a file")
                source = archive.extractfile(member)
                if source is None:
                    raise CheckpointRefused(partition, f"{member.name!r} has no content")
                if member.name == MANIFEST_NAME:
                    if member.size > MAX_MANIFEST_BYTES:
                        raise CheckpointRefused(partition, "manifest too large")
                    manifest = Manifest.decode(source.read(), partition)
                    continue
                check_file_name(partition, member.name)
                if member.name in received:
                    raise CheckpointRefused(partition, f"{member.name} sent twice")
                received[member.name] = _write(source, directory / member.name)
    except (tarfile.TarError, EOFError) as exc:
        raise CheckpointRefused(partition, f"not a complete tar ({exc})") from exc
    verified = verify(manifest, expected, received)
    _sync_dir(directory)
    return verified


def _write(source: IO[bytes], path: Path) -> FileDigest:
    digest = hashlib.sha256()
    size = 0
    with path.open("xb") as target:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
            target.write(chunk)
        target.flush()
        os.fsync(target.fileno())
    return FileDigest(size, digest.hexdigest())


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tar_bytes(directory: Path, manifest: Manifest) -> bytes:
    """The whole tar in memory (tests, small copies)."""
    return b"".join(tar_chunks(directory, manifest))


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
