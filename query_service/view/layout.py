"""The view's key layout (format 3) over any sorted key-value store that writes a batch atomically.

    l:<user>/<group>/<sku>\\0<price:010d>  -> quantity,order_count,name        one per line
    s:<user>                               -> the user's record: orders applied, the user's
                                              version (the offset of the user's last event
                                              applied), then item_count,total_minor,line_count
                                              of each price group in GROUPS order
    o:<user>/<order_id>                    -> the event's value as it came from the topic
    n:<user>/<~sequence:016x>              -> order_id, newest first
    p:<partition>                          -> last applied offset
    m:topic, m:format                      -> what the database holds

A user id never contains '/' and a sku never contains a control character, so keys are
unambiguous, and a group's lines sort by sku, then unit price. An order touches its user's one
record, the lines of its items and its own two records (format 2 kept a record per group, the
count and the version apart: three more reads and writes an event). A commit writes every record a
batch changed and each partition's offset in one atomic write: the view on disk always equals
the fold of the events up to its offsets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, NamedTuple, Protocol

from query_service.exceptions import StateDirError
from query_service.view.decoding import Placed
from query_service.view.projection import (
    EMPTY_SUMMARY,
    GROUPS,
    Changes,
    Line,
    LineId,
    Summary,
    SummaryId,
    fold,
    touched,
)

FORMAT: Final = b"3"
FORMAT_KEY: Final = b"m:format"
TOPIC_KEY: Final = b"m:topic"
TOPIC_ID_KEY: Final = b"m:topic-id"
OFFSET_PREFIX: Final = b"p:"
_LINE: Final = b"l:"
_USER: Final = b"s:"
_ORDER: Final = b"o:"
_NEWEST: Final = b"n:"
_SEQUENCE_MAX: Final = 2**64 - 1
# A NamedTuple without its Python-level __new__ (the ingest decodes thousands a batch).
_new = tuple.__new__


def line_prefix(user_id: str, group: str) -> bytes:
    return b"%s%s/%s/" % (_LINE, user_id.encode(), group.encode())


def line_key(line: LineId) -> bytes:
    # line_prefix's bytes and the sku, in one format (the ingest builds one per item).
    return f"l:{line[0]}/{line[1]}/{line[2]}\x00{line[3]:010d}".encode()


def parse_line_key(user_id: str, group: str, key: bytes) -> LineId:
    sku, price = key[len(line_prefix(user_id, group)) :].rsplit(b"\x00", 1)
    return LineId(user_id, group, sku.decode(), int(price))


def user_key(user_id: str) -> bytes:
    return _USER + user_id.encode()


def order_key(user_id: str, order_id: str) -> bytes:
    return f"o:{user_id}/{order_id}".encode()


def newest_prefix(user_id: str) -> bytes:
    return b"%s%s/" % (_NEWEST, user_id.encode())


def newest_key(user_id: str, sequence: int) -> bytes:
    return b"%s%016x" % (newest_prefix(user_id), _SEQUENCE_MAX - sequence)


def sequence_of(user_id: str, key: bytes) -> int:
    return _SEQUENCE_MAX - int(key[len(newest_prefix(user_id)) :], 16)


def offset_key(partition: int) -> bytes:
    return OFFSET_PREFIX + str(partition).encode()


def encode_line(line: Line) -> bytes:
    # The name goes last, so that whatever it holds, the first two commas split the numbers off.
    return b"%d,%d,%s" % (line.quantity, line.order_count, line.name.encode())


def decode_line(raw: bytes) -> Line:
    quantity, order_count, name = raw.split(b",", 2)
    line: Line = _new(Line, (name.decode(), int(quantity), int(order_count)))
    return line


assert len(GROUPS) == 3, "a user record holds three summaries"


class UserRecord(NamedTuple):
    """A user's orders applied, version, and one summary per price group (in GROUPS order)."""

    order_count: int
    version: int
    summaries: tuple[Summary, ...]


_USER_FORMAT: Final = b",".join([b"%d"] * (2 + 3 * len(GROUPS)))


def encode_user(record: UserRecord) -> bytes:
    cheap, affordable, expensive = record.summaries
    return _USER_FORMAT % (record.order_count, record.version, *cheap, *affordable, *expensive)


def decode_user(raw: bytes) -> UserRecord:
    fields = list(map(int, raw.split(b",")))
    summaries = (
        _new(Summary, fields[2:5]),
        _new(Summary, fields[5:8]),
        _new(Summary, fields[8:11]),
    )
    record: UserRecord = _new(UserRecord, (fields[0], fields[1], summaries))
    return record


def _summary_or_none(summary: Summary) -> Summary | None:
    return summary if summary[2] else None  # no lines: the group is empty


class PointReads(Protocol):
    def get_many(self, keys: list[bytes]) -> list[bytes | None]: ...


def read_version(reads: PointReads, user_id: str) -> int | None:
    """The offset of the user's last event applied (None: the user has no orders)."""
    (value,) = reads.get_many([user_key(user_id)])
    return None if value is None else int(value.split(b",", 2)[1])


class RawReader(PointReads, Protocol):
    """A consistent view of the raw records: point reads and a sorted scan."""

    def scan(self, start: bytes, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to `limit` records from `start` on (inclusive) whose keys start with `prefix`."""
        ...


class ViewReader:
    """Reads of one user's records, all at the one state of `raw`."""

    def __init__(self, raw: RawReader) -> None:
        self._raw = raw

    def summaries(self, user_id: str, groups: Sequence[str]) -> dict[str, Summary | None]:
        (raw,) = self._raw.get_many([user_key(user_id)])
        if raw is None:
            return dict.fromkeys(groups)
        summaries = dict(zip(GROUPS, decode_user(raw).summaries, strict=True))
        return {group: _summary_or_none(summaries[group]) for group in groups}

    def lines(
        self, user_id: str, group: str, after: tuple[str, int] | None, limit: int
    ) -> list[tuple[LineId, Line]]:
        """Up to `limit` lines of a group in (sku, unit price) order, after `after` if given."""
        prefix = line_prefix(user_id, group)
        start = prefix if after is None else line_key(LineId(user_id, group, *after)) + b"\x00"
        return [
            (parse_line_key(user_id, group, key), decode_line(value))
            for key, value in self._raw.scan(start, prefix, limit)
        ]

    def newest_orders(
        self, user_id: str, before: int | None, limit: int
    ) -> list[tuple[int, bytes]]:
        """Up to `limit` (sequence, event value) of the user's orders, newest first, older than
        sequence `before` if given.
        """
        prefix = newest_prefix(user_id)
        start = prefix if before is None else newest_key(user_id, before - 1)
        found = self._raw.scan(start, prefix, limit)
        values = self._raw.get_many([order_key(user_id, oid.decode()) for _, oid in found])
        return [
            (sequence_of(user_id, key), value)
            for (key, _), value in zip(found, values, strict=True)
            if value is not None
        ]

    def order(self, user_id: str, order_id: str) -> bytes | None:
        (value,) = self._raw.get_many([order_key(user_id, order_id)])
        return value

    def version(self, user_id: str) -> int | None:
        return read_version(self._raw, user_id)


class KeyValuePartitionStore:
    """The `PartitionStore` port over raw keys: subclasses supply reads, a scan and an atomic
    write."""

    def __init__(self) -> None:
        self._offsets: dict[int, int] = {}

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """The values of `keys`, None where a key is absent."""
        raise NotImplementedError

    def write(self, puts: list[tuple[bytes, bytes]]) -> None:
        """Write every pair or none."""
        raise NotImplementedError

    def reader(self) -> ViewReader:
        """Reads at the state of now, unmoved by later commits."""
        raise NotImplementedError

    def bind_topic(self, topic_id: str) -> None:
        (stored,) = self.get_many([TOPIC_ID_KEY])
        if stored is None:
            self.write([(TOPIC_ID_KEY, topic_id.encode())])
        elif stored != topic_id.encode():
            raise StateDirError(
                f"the state was built from a topic with id {stored.decode()}, but the topic of "
                f"that name now has id {topic_id}: it was deleted and created again. Rebuild "
                "the view: stop the service and delete QUERY_STATE_DIR (or run "
                "`python -m query_service rebuild`), then start it"
            )

    def known_orders(self, orders: Sequence[tuple[str, str]]) -> list[bool]:
        """Which of (user_id, order_id) the view already holds."""
        found = self.get_many([order_key(user_id, order_id) for user_id, order_id in orders])
        return [value is not None for value in found]

    def records(
        self, lines: Sequence[LineId], summaries: Sequence[SummaryId], users: Sequence[str]
    ) -> tuple[dict[LineId, Line | None], dict[SummaryId, Summary | None], dict[str, int]]:
        """The current value of each record a fold reads, in one batched read."""
        keys = _RecordKeys(lines, summaries, users)
        return keys.decode(self.get_many(keys.all()))

    def applied_offsets(self) -> dict[int, int]:
        return dict(self._offsets)

    def apply(self, events: Sequence[Placed], offsets: Mapping[int, int]) -> Changes:
        """Fold the events whose orders the view does not hold yet into the records they touch
        and commit them with `offsets`: one batched read (the orders and every record), one
        atomic write. Each key is built once."""
        orders = {(event[0], event[1]): order_key(event[0], event[1]) for event in events}
        keys = _RecordKeys(*touched(events))
        keys.orders = orders
        found = self.get_many([*orders.values(), *keys.all()])
        n = len(orders)
        # An order the batch lists twice is read once; fold applies it once.
        held = dict(zip(orders, found[:n], strict=True))
        new = [event for event in events if held[event[0], event[1]] is None]
        changes = fold(new, *keys.decode(found[n:]))
        changes.duplicates += len(events) - len(new)
        self.write(self._puts(changes, offsets, keys))
        self._offsets.update(offsets)
        return changes

    def commit(self, changes: Changes, offsets: Mapping[int, int]) -> None:
        """Store changes folded from `records` (apply does both in one read)."""
        keys = _RecordKeys([], [], list(changes.order_counts))
        keys.decode(self.get_many(keys.all()))
        self.write(self._puts(changes, offsets, keys))
        self._offsets.update(offsets)

    @staticmethod
    def _puts(
        changes: Changes, offsets: Mapping[int, int], keys: _RecordKeys
    ) -> list[tuple[bytes, bytes]]:
        line_keys, order_keys = keys.lines, keys.orders
        puts = [
            (line_keys.get(line_id) or line_key(line_id), encode_line(line))
            for line_id, line in changes.lines.items()
        ]
        versions: dict[str, int] = {}
        for event, sequence in changes.orders:
            user_id, order_id = event[0], event[1]
            # An order's record is its event's value as it came from the topic, already JSON.
            key = order_keys.get((user_id, order_id)) or order_key(user_id, order_id)
            puts.append((key, event[3]))
            puts.append((newest_key(user_id, sequence), order_id.encode()))
            # A user changes only with a new order: the last one's offset is the user's
            # version, whatever batch it came in, so every copy gives a user the same version.
            versions[user_id] = event[4]
        # Every user a batch changed has a new order, so a new count and version; the groups
        # the batch left alone keep their summaries.
        summaries = changes.summaries
        for user_id, count in changes.order_counts.items():
            old = keys.found.get(user_id)
            before = old.summaries if old is not None else _EMPTY_GROUPS
            after = tuple(
                summaries.get(_new(SummaryId, (user_id, group))) or summary
                for group, summary in zip(GROUPS, before, strict=True)
            )
            record = _new(UserRecord, (count, versions[user_id], after))
            puts.append((keys.user_keys.get(user_id) or user_key(user_id), encode_user(record)))
        puts += [(offset_key(p), b"%d" % offset) for p, offset in offsets.items()]
        return puts

    def load_offsets(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Cache the offsets from the store's `p:` records, read once when it opens."""
        self._offsets = {int(key[len(OFFSET_PREFIX) :]): int(value) for key, value in items}


class _RecordKeys:
    """The keys of the records a fold reads, built once for the read and the write after it;
    the user records found, for the write to keep what the batch did not change."""

    def __init__(
        self, lines: Sequence[LineId], summaries: Sequence[SummaryId], users: Sequence[str]
    ) -> None:
        self.lines = {line: line_key(line) for line in lines}
        self.summaries = summaries
        self.user_keys = {user: user_key(user) for user in users}
        self.found: dict[str, UserRecord] = {}
        # The orders' keys by (user id, order id).
        self.orders: dict[tuple[str, str], bytes] = {}

    def all(self) -> list[bytes]:
        return [*self.lines.values(), *self.user_keys.values()]

    def decode(
        self, found: Sequence[bytes | None]
    ) -> tuple[dict[LineId, Line | None], dict[SummaryId, Summary | None], dict[str, int]]:
        """The records' values from `found`, the values of `all()` in its order."""
        n_lines = len(self.lines)
        lines = {
            line: None if raw is None else decode_line(raw)
            for line, raw in zip(self.lines, found[:n_lines], strict=True)
        }
        users = self.found
        for user, raw in zip(self.user_keys, found[n_lines:], strict=True):
            if raw is not None:
                users[user] = decode_user(raw)
        summaries: dict[SummaryId, Summary | None] = {}
        for summary_id in self.summaries:
            record = users.get(summary_id[0])
            summaries[summary_id] = (
                None
                if record is None
                else _summary_or_none(record.summaries[_GROUP_INDEX[summary_id[1]]])
            )
        counts = {user: record.order_count for user, record in users.items()}
        return lines, summaries, counts


_GROUP_INDEX: Final = {group: i for i, group in enumerate(GROUPS)}
_EMPTY_GROUPS: Final = (EMPTY_SUMMARY,) * len(GROUPS)
