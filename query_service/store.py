"""The RocksDB adapter of the `ViewStore` port: the view's keys in one database per version."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from query_service.exceptions import StateDirError
from query_service.layout import OFFSET_PREFIX, TOPIC_KEY, KeyValueViewStore


class RocksViewStore(KeyValueViewStore):
    """A RocksDB database owned by this process (its LOCK file); open it after any fork."""

    def __init__(self, path: Path, topic: str) -> None:
        super().__init__()
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = Rdict(str(path), _options())
        # The WAL (on by default) makes each write survive a process crash as soon as write()
        # returns; sync=True would only add safety against a power loss, at a large cost.
        self._write_options = WriteOptions()
        stored_topic = self._db.get(TOPIC_KEY)
        if stored_topic is None:
            self._db.put(TOPIC_KEY, topic.encode())
        elif stored_topic != topic.encode():
            self._db.close()
            raise StateDirError(
                f"{path} holds a view of topic {stored_topic.decode()!r}, not {topic!r}; "
                "point QUERY_STATE_DIR elsewhere or rebuild"
            )
        self.load_offsets(self._scan(OFFSET_PREFIX))

    def _scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        found = []
        it = self._db.iter()
        it.seek(prefix)
        while it.valid() and it.key().startswith(prefix):
            found.append((it.key(), it.value()))
            it.next()
        return found

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return cast(list[bytes | None], self._db.get(cast(list[Any], keys)))

    def write(self, puts: list[tuple[bytes, bytes]]) -> None:
        batch = WriteBatch(raw_mode=True)
        for key, value in puts:
            batch.put(key, value)
        self._db.write(batch, self._write_options)

    def close(self) -> None:
        self._db.close()


def _options() -> Any:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_max_background_jobs(2)
    return options
