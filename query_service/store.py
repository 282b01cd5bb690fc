"""The RocksDB adapter of the `ViewStore` port: the view's records in one database per version."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteOptions

from query_service.exceptions import StateDirError
from query_service.layout import (
    FORMAT,
    FORMAT_KEY,
    OFFSET_PREFIX,
    TOPIC_KEY,
    KeyValueViewStore,
    ViewReader,
)

# Hot lines, summaries and order records stay in memory: a small share of the 500 MB budget.
BLOCK_CACHE_BYTES = 64 * 1024 * 1024
WRITE_BUFFER_BYTES = 32 * 1024 * 1024


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


class RocksViewStore(KeyValueViewStore):
    """A RocksDB database owned by this process (its LOCK file); open it after any fork.

    `legacy` is true for a database of the first format (one record per user view), which the
    service does not read: it builds a new version from the log instead.
    """

    def __init__(self, path: Path, topic: str) -> None:
        super().__init__()
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = Rdict(str(path), _options())
        # The WAL (on by default) makes each write survive a process crash as soon as write()
        # returns; sync=True would only add safety against a power loss, at a large cost.
        self._write_options = WriteOptions()
        stored_topic = self._db.get(TOPIC_KEY)
        stored_format = self._db.get(FORMAT_KEY)
        self.legacy = stored_topic is not None and stored_format is None
        if stored_topic is None:
            self.write([(TOPIC_KEY, topic.encode()), (FORMAT_KEY, FORMAT)])
        elif stored_topic != topic.encode():
            self._db.close()
            raise StateDirError(
                f"{path} holds a view of topic {stored_topic.decode()!r}, not {topic!r}; "
                "point QUERY_STATE_DIR elsewhere or rebuild"
            )
        self.load_offsets(_scan(self._db.iter(), OFFSET_PREFIX, OFFSET_PREFIX, 1_000_000))

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
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


def _options() -> Any:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_max_background_jobs(2)
    options.set_write_buffer_size(WRITE_BUFFER_BYTES)
    table = BlockBasedOptions()
    table.set_block_cache(Cache(BLOCK_CACHE_BYTES))
    # Order records are read by point lookups (is this order new?): a bloom filter answers
    # most misses without reading a block.
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    return options
