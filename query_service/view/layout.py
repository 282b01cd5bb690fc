"""The view's key layout (format 2) over any sorted key-value store that writes a batch atomically.

    l:<user>/<group>/<sku>\\0<price:010d>  -> quantity,order_count,name        one per line
    s:<user>/<group>                       -> item_count,total_minor,line_count
    c:<user>                               -> orders applied for the user
    u:<user>                               -> the user's version: the offset of the user's last
                                              event applied
    o:<user>/<order_id>                    -> the event's value as it came from the topic
    n:<user>/<~sequence:016x>              -> order_id, newest first
    p:<partition>                          -> last applied offset
    m:topic, m:format                      -> what the database holds

A user id never contains '/' and a sku never contains a control character, so keys are
unambiguous, and a group's lines sort by sku, then unit price. A commit writes every record a
batch changed and each partition's offset in one atomic write: the view on disk always equals
the fold of the events up to its offsets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Protocol

from query_service.exceptions import StateDirError
from query_service.view.projection import Changes, Line, LineId, Summary, SummaryId

FORMAT: Final = b"2"
FORMAT_KEY: Final = b"m:format"
TOPIC_KEY: Final = b"m:topic"
TOPIC_ID_KEY: Final = b"m:topic-id"
OFFSET_PREFIX: Final = b"p:"
_LINE: Final = b"l:"
_SUMMARY: Final = b"s:"
_COUNT: Final = b"c:"
_VERSION: Final = b"u:"
_ORDER: Final = b"o:"
_NEWEST: Final = b"n:"
_SEQUENCE_MAX: Final = 2**64 - 1


def line_prefix(user_id: str, group: str) -> bytes:
    return b"%s%s/%s/" % (_LINE, user_id.encode(), group.encode())


def line_key(line: LineId) -> bytes:
    return b"%s%s\x00%010d" % (line_prefix(line[0], line[1]), line[2].encode(), line[3])


def parse_line_key(user_id: str, group: str, key: bytes) -> LineId:
    sku, price = key[len(line_prefix(user_id, group)) :].rsplit(b"\x00", 1)
    return LineId(user_id, group, sku.decode(), int(price))


def summary_key(summary: SummaryId) -> bytes:
    return b"%s%s/%s" % (_SUMMARY, summary[0].encode(), summary[1].encode())


def count_key(user_id: str) -> bytes:
    return _COUNT + user_id.encode()


def version_key(user_id: str) -> bytes:
    return _VERSION + user_id.encode()


def order_key(user_id: str, order_id: str) -> bytes:
    return b"%s%s/%s" % (_ORDER, user_id.encode(), order_id.encode())


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
    return Line(name.decode(), int(quantity), int(order_count))


def encode_summary(summary: Summary) -> bytes:
    return b"%d,%d,%d" % summary


def decode_summary(raw: bytes) -> Summary:
    item_count, total_minor, line_count = raw.split(b",")
    return Summary(int(item_count), int(total_minor), int(line_count))


class PointReads(Protocol):
    def get_many(self, keys: list[bytes]) -> list[bytes | None]: ...


def read_version(reads: PointReads, user_id: str) -> int | None:
    """The offset of the user's last event applied (None: none recorded: the user has no
    orders, or the state predates versions)."""
    (value,) = reads.get_many([version_key(user_id)])
    return None if value is None else int(value)


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
        found = self._raw.get_many([summary_key(SummaryId(user_id, g)) for g in groups])
        return {
            group: None if raw is None else decode_summary(raw)
            for group, raw in zip(groups, found, strict=True)
        }

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
        keys = [line_key(line) for line in lines]
        keys += [summary_key(summary) for summary in summaries]
        keys += [count_key(user) for user in users]
        found = self.get_many(keys)
        n_lines, n_summaries = len(lines), len(summaries)
        line_values = found[:n_lines]
        summary_values = found[n_lines : n_lines + n_summaries]
        count_values = found[n_lines + n_summaries :]
        return (
            {
                line: None if raw is None else decode_line(raw)
                for line, raw in zip(lines, line_values, strict=True)
            },
            {
                summary: None if raw is None else decode_summary(raw)
                for summary, raw in zip(summaries, summary_values, strict=True)
            },
            {user: int(raw) for user, raw in zip(users, count_values, strict=True) if raw},
        )

    def applied_offsets(self) -> dict[int, int]:
        return dict(self._offsets)

    def commit(self, changes: Changes, offsets: Mapping[int, int]) -> None:
        puts = [(line_key(line_id), encode_line(line)) for line_id, line in changes.lines.items()]
        puts += [(summary_key(sid), encode_summary(s)) for sid, s in changes.summaries.items()]
        puts += [(count_key(user), b"%d" % count) for user, count in changes.order_counts.items()]
        versions: dict[str, int] = {}
        for event, sequence in changes.orders:
            # An order's record is its event's value as it came from the topic, already JSON.
            puts.append((order_key(event.user_id, event.order_id), event.value))
            puts.append((newest_key(event.user_id, sequence), event.order_id.encode()))
            # A user changes only with a new order: the last one's offset is the user's
            # version, whatever batch it came in, so every copy gives a user the same version.
            versions[event.user_id] = event.offset
        puts += [(version_key(user), b"%d" % version) for user, version in versions.items()]
        puts += [(offset_key(p), b"%d" % offset) for p, offset in offsets.items()]
        self.write(puts)
        self._offsets.update(offsets)

    def load_offsets(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Cache the offsets from the store's `p:` records, read once when it opens."""
        self._offsets = {int(key[len(OFFSET_PREFIX) :]): int(value) for key, value in items}
