"""The view store port and its two implementations: RocksDB for the service, memory for tests.

A commit writes the changed views, the applied orders and each partition's last applied offset
in one atomic write, so the view on disk always equals the fold of the events up to its offsets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import orjson
from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from query_service.exceptions import StateDirError
from query_service.projection import AppliedOrder, BatchResult, ItemsView, applied_order
from shared.events import decode

_VIEW = b"v:"
_ORDER = b"o:"
_OFFSET = b"p:"
_TOPIC = b"m:topic"


def view_key(user_id: str) -> bytes:
    return _VIEW + user_id.encode()


def order_key(user_id: str, order_id: str) -> bytes:
    # A user id never contains '/', so the key is unambiguous.
    return _ORDER + user_id.encode() + b"/" + order_id.encode()


def offset_key(partition: int) -> bytes:
    return _OFFSET + str(partition).encode()


class ViewStore(Protocol):
    def views(self, user_ids: Sequence[str]) -> list[ItemsView | None]: ...

    def order(self, user_id: str, order_id: str) -> AppliedOrder | None: ...

    def applied_offsets(self) -> dict[int, int]:
        """The last applied offset of each partition that has any."""
        ...

    def commit(self, result: BatchResult, offsets: Mapping[int, int]) -> None:
        """Store the batch's changes and the partitions' new offsets, all or nothing."""
        ...

    def close(self) -> None: ...


class _KeyValueStore:
    """The key layout and offset cache both implementations share."""

    def __init__(self) -> None:
        self._offsets: dict[int, int] = {}

    def _get_many(self, keys: list[bytes]) -> list[bytes | None]:
        raise NotImplementedError

    def _write(self, puts: list[tuple[bytes, bytes]]) -> None:
        raise NotImplementedError

    def views(self, user_ids: Sequence[str]) -> list[ItemsView | None]:
        raw = self._get_many([view_key(user_id) for user_id in user_ids])
        return [None if value is None else cast(ItemsView, orjson.loads(value)) for value in raw]

    def order(self, user_id: str, order_id: str) -> AppliedOrder | None:
        (value,) = self._get_many([order_key(user_id, order_id)])
        return None if value is None else applied_order(decode(value), order_id)

    def applied_offsets(self) -> dict[int, int]:
        return dict(self._offsets)

    def commit(self, result: BatchResult, offsets: Mapping[int, int]) -> None:
        dumps = orjson.dumps
        puts = [(view_key(user_id), dumps(view)) for user_id, view in result.views.items()]
        # An order's record is its event's value as it came from the topic, already JSON.
        puts += [(order_key(e.user_id, e.order_id), e.value) for e in result.applied]
        puts += [(offset_key(p), str(offset).encode()) for p, offset in offsets.items()]
        self._write(puts)
        self._offsets.update(offsets)

    def _load_offsets(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        self._offsets = {int(key[len(_OFFSET) :]): int(value) for key, value in items}


class MemoryViewStore(_KeyValueStore):
    """For unit tests: the same keys and bytes as RocksDB, in a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[bytes, bytes] = {}

    def _get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.data.get(key) for key in keys]

    def _write(self, puts: list[tuple[bytes, bytes]]) -> None:
        self.data.update(puts)

    def close(self) -> None:
        pass


class RocksViewStore(_KeyValueStore):
    """A RocksDB database owned by this process (its LOCK file); open it after any fork."""

    def __init__(self, path: Path, topic: str) -> None:
        super().__init__()
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = Rdict(str(path), _options())
        # The WAL (on by default) makes each write survive a process crash as soon as write()
        # returns; sync=True would only add safety against a power loss, at a large cost.
        self._write_options = WriteOptions()
        stored_topic = self._db.get(_TOPIC)
        if stored_topic is None:
            self._db.put(_TOPIC, topic.encode())
        elif stored_topic != topic.encode():
            self._db.close()
            raise StateDirError(
                f"{path} holds a view of topic {stored_topic.decode()!r}, not {topic!r}; "
                "point QUERY_STATE_DIR elsewhere or rebuild"
            )
        self._load_offsets(self._scan(_OFFSET))

    def _scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        found = []
        it = self._db.iter()
        it.seek(prefix)
        while it.valid() and it.key().startswith(prefix):
            found.append((it.key(), it.value()))
            it.next()
        return found

    def _get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return cast(list[bytes | None], self._db.get(cast(list[Any], keys)))

    def _write(self, puts: list[tuple[bytes, bytes]]) -> None:
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
