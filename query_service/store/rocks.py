"""The RocksDB adapters of the view's ports: one database per partition, like a Kafka Streams
task's state store, so that a partition's records and its offset commit together and an instance
can take up or drop one partition without touching the others.

    <state dir>/<version>/partition-<n>/    one RocksDB database
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any, cast

from rocksdict import (
    BlockBasedOptions,
    Cache,
    Checkpoint,
    Options,
    Rdict,
    WriteBatch,
    WriteBufferManager,
    WriteOptions,
)

from query_service.exceptions import StateDirError
from query_service.view.layout import (
    FORMAT,
    FORMAT_KEY,
    OFFSET_PREFIX,
    TOPIC_KEY,
    KeyValuePartitionStore,
    ViewReader,
)

# RocksDB's memory, shared by every partition's database of a process, within the 500 MB budget:
# a block cache that keeps the records the fold reads (every user's summary and the newest
# lines) in memory however long the history, and memtables bounded all together, so that six
# partitions or sixty cost the same.
BLOCK_CACHE_BYTES = 128 * 1024 * 1024
MEMTABLES_BYTES = 96 * 1024 * 1024
# Large memtables absorb a replay's rewrites of the same summaries and lines before they reach
# a file: half the compaction work of 8 MiB ones in the 1M-event ingest.
WRITE_BUFFER_BYTES = 32 * 1024 * 1024
MAX_WRITE_BUFFERS = 4


class Memory:
    """The block cache and memtable budget the partitions of one process share."""

    def __init__(
        self, cache_bytes: int = BLOCK_CACHE_BYTES, memtables_bytes: int = MEMTABLES_BYTES
    ) -> None:
        self.cache = Cache(cache_bytes)
        # No stall: past the budget RocksDB flushes the largest memtables sooner, it never
        # blocks a write (which would hold up the consumer loop with no bound).
        self.write_buffers = WriteBufferManager(memtables_bytes, False)


PARTITION_DIR = "partition-{}"
# A handed-over copy is received beside the partition's directory, then renamed into place.
INCOMING_DIR = "partition-{}.incoming-{}"
# How long a checkpoint waits for a kept partition's database to be let go by its last reader.
KEPT_OPEN_S = 5.0
# A checkpoint being served, deleted once sent.
SERVING_DIR = "partition-{}.serving-{}"

log = logging.getLogger(__name__)


class _IteratorReader:
    """Reads through one RocksDB iterator, which sees the database as it was when it was made:
    every read of a page sees the same committed batches. (rocksdict's `Snapshot.iter()` does
    not: it sees later writes.)
    """

    def __init__(self, db: Any) -> None:
        self._it = db.iter()

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        it = self._it
        found: list[bytes | None] = []
        for key in keys:
            it.seek(key)
            found.append(it.value() if it.valid() and it.key() == key else None)
        return found

    def scan(self, start: bytes, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        return _scan(self._it, start, prefix, limit)


def _scan(it: Any, start: bytes, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
    found: list[tuple[bytes, bytes]] = []
    it.seek(start)
    while len(found) < limit and it.valid():
        key = it.key()
        if not key.startswith(prefix):
            break
        found.append((key, it.value()))
        it.next()
    return found


class RocksPartitionStore(KeyValuePartitionStore):
    """One partition's RocksDB database, owned by this process (its LOCK file); open it after
    any fork."""

    def __init__(self, path: Path, topic: str, memory: Memory | None = None) -> None:
        super().__init__()
        path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), _options(memory if memory is not None else Memory()))
        # The WAL (on by default) makes each write survive a process crash as soon as write()
        # returns; sync=True would only add safety against a power loss, at a large cost.
        self._write_options = WriteOptions()
        stored_topic = self._db.get(TOPIC_KEY)
        if stored_topic is None:
            self.write([(TOPIC_KEY, topic.encode()), (FORMAT_KEY, FORMAT)])
        elif stored_topic != topic.encode():
            self._db.close()
            raise StateDirError(
                f"{path} holds a view of topic {stored_topic.decode()!r}, not {topic!r}; "
                "point QUERY_STATE_DIR elsewhere or rebuild"
            )
        self.load_offsets(_scan(self._db.iter(), OFFSET_PREFIX, OFFSET_PREFIX, 1_000_000))
        self.format = cast(bytes | None, self._db.get(FORMAT_KEY))

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        if len(keys) == 1:  # a hot read's one version: a multi-get costs it twice as much
            return [cast(bytes | None, self._db.get(keys[0]))]
        return cast(list[bytes | None], self._db.get(cast(list[Any], keys)))

    def write(self, puts: list[tuple[bytes, bytes]]) -> None:
        batch = WriteBatch(raw_mode=True)
        for key, value in puts:
            batch.put(key, value)
        self._db.write(batch, self._write_options)

    def reader(self) -> ViewReader:
        return ViewReader(_IteratorReader(self._db))

    def close(self) -> None:
        self._db.close()

    @property
    def db(self) -> Rdict:
        return self._db


def is_database(path: Path) -> bool:
    """Whether `path` is a RocksDB database itself (the first format kept one per version)."""
    return (path / "CURRENT").exists()


class RocksPartitionStores:
    """The `PartitionStores` port: the partitions' databases of one version of the view."""

    def __init__(self, version: Path, topic: str) -> None:
        self._version = version
        self._topic = topic
        self._memory = Memory()
        # Swapped whole under the lock by the consumer thread (open, close_partition, drop) and
        # the lifespan (close); read without it by the event loop (get).
        self._open: dict[int, RocksPartitionStore] = {}
        self._lock = threading.Lock()
        # A copy whose receiver was killed mid-transfer: never opened, deleted at start.
        stale = [
            *version.glob(INCOMING_DIR.format("*", "*")),
            *version.glob(SERVING_DIR.format("*", "*")),
        ]
        for path in stale:
            log.warning("deleting %s, a hand-off that never finished", path)
            shutil.rmtree(path, ignore_errors=True)

    def open(self, partition: int) -> RocksPartitionStore:
        with self._lock:
            store = self._open.get(partition)
            if store is None:
                path = self._version / PARTITION_DIR.format(partition)
                store = RocksPartitionStore(path, self._topic, self._memory)
                if store.format != FORMAT:
                    # Derived data in another layout: this code cannot read it, the log can
                    # build it again (the partition is not ready until it has caught up).
                    log.warning(
                        "%s holds partition %d in format %s, not %s: rebuilding it from the log",
                        path,
                        partition,
                        (store.format or b"?").decode(),
                        FORMAT.decode(),
                    )
                    store.close()
                    shutil.rmtree(path)
                    store = RocksPartitionStore(path, self._topic, self._memory)
                self._open = {**self._open, partition: store}
            return store

    def get(self, partition: int) -> RocksPartitionStore | None:
        return self._open.get(partition)

    def close_partition(self, partition: int) -> None:
        # Closed under the lock: a checkpoint of the partition (kept after a move) opens it only
        # once this close (a flush of its memtables) is done.
        with self._lock:
            store = self._open.get(partition)
            if store is not None:
                self._open = {p: s for p, s in self._open.items() if p != partition}
                store.close()

    def drop(self, partition: int) -> None:
        """Close a partition's database and delete it: it can be built again from the log."""
        self.close_partition(partition)
        # Under the lock: a checkpoint of it being taken meanwhile finishes first.
        with self._lock:
            shutil.rmtree(self._version / PARTITION_DIR.format(partition), ignore_errors=True)

    def serving(self, partition: int) -> Path:
        """Where a checkpoint of the partition is taken to be served (not yet existing): beside
        the databases, on their file system, so that its files are hard links."""
        return self._version / SERVING_DIR.format(partition, uuid.uuid4().hex[:12])

    def checkpoint(self, partition: int, target: Path) -> bool:
        """A consistent copy of the partition's database in `target` (made here): hard links of
        its files, taken while ingest goes on. From a partition let go but kept on disk too.
        False if this instance has no state of the partition."""
        deadline = time.monotonic() + KEPT_OPEN_S
        while True:
            with self._lock:
                store = self._open.get(partition)
                if store is not None:
                    Checkpoint(store.db).create_checkpoint(str(target))
                    return True
                path = self._version / PARTITION_DIR.format(partition)
                if not is_database(path):
                    return False
                # Kept after a move: opened for the copy only, under the lock so that the
                # consumer thread neither takes it up nor drops it meanwhile.
                try:
                    db = Rdict(str(path), _options(self._memory))
                except Exception as exc:  # rocksdict raises plain Exceptions
                    # Still locked by a reader of the closed store that has not let go yet.
                    if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                        raise StateDirError(
                            f"{path} cannot be opened for a checkpoint: {exc}"
                        ) from exc
                else:
                    try:
                        Checkpoint(db).create_checkpoint(str(target))
                    finally:
                        db.close()
                    return True
            time.sleep(0.05)

    def incoming(self, partition: int) -> Path:
        """Where a handed-over copy of the partition is received (not yet existing)."""
        return self._version / INCOMING_DIR.format(partition, uuid.uuid4().hex[:12])

    def install(self, partition: int, incoming: Path) -> None:
        """Put a received and verified copy in place of the partition's state (closed)."""
        path = self._version / PARTITION_DIR.format(partition)
        with self._lock:
            if partition in self._open:
                raise StateDirError(f"partition {partition} is open: a copy cannot replace it")
            shutil.rmtree(path, ignore_errors=True)
            os.replace(incoming, path)
            fd = os.open(self._version, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        with self._lock:
            stores, self._open = list(self._open.values()), {}
        for store in stores:
            store.close()


def _options(memory: Memory) -> Any:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_max_background_jobs(2)
    options.set_write_buffer_size(WRITE_BUFFER_BYTES)
    options.set_max_write_buffer_number(MAX_WRITE_BUFFERS)
    options.set_write_buffer_manager(memory.write_buffers)
    # Most of a batch's reads are of keys written moments ago or never (a new order): a bloom
    # filter over the memtable's whole keys answers those without a skiplist search.
    options.set_memtable_whole_key_filtering(True)
    options.set_memtable_prefix_bloom_ratio(0.1)
    table = BlockBasedOptions()
    table.set_block_cache(memory.cache)
    # Order records are read by point lookups (is this order new?): a bloom filter answers
    # most misses without reading a block.
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    return options
