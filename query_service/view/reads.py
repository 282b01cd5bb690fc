"""The read side: read a page of the view at a known position (a token's wait is the caller's).

Every page is read from one store snapshot taken after the position: it holds at least what
the position says, and its summaries and lines agree with each other. A page reads at most
`limit` records per group, so its cost does not grow with the user's history.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol

from query_service.exceptions import (
    ForeignToken,
    OrderNotFound,
    PartitionNotHeld,
    UnknownPartition,
)
from query_service.view import cursors
from query_service.view.layout import PointReads, ViewReader, read_version
from query_service.view.partitioning import partition_for
from query_service.view.projection import EMPTY_SUMMARY, GROUPS, Line, LineId, Summary
from shared.events import OrderPlaced, decode
from shared.tokens import ConsistencyToken

DEFAULT_LINES: Final = 50
MAX_LINES: Final = 500
DEFAULT_ORDERS: Final = 20
MAX_ORDERS: Final = 100


@dataclass(frozen=True, slots=True)
class GroupPage:
    summary: Summary
    lines: list[tuple[LineId, Line]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ItemsPage:
    groups: dict[str, GroupPage]
    token: ConsistencyToken


@dataclass(frozen=True, slots=True)
class OrdersPage:
    # Each order as its event in the newest shape, newest first.
    orders: list[OrderPlaced]
    next_cursor: str | None
    token: ConsistencyToken


class UserSnapshot(NamedTuple):
    reader: ViewReader
    token: ConsistencyToken


class ReadableStore(PointReads, Protocol):
    """A partition's view as reads need it: point reads of the live state, and readers that
    each fix one state."""

    def reader(self) -> ViewReader: ...


class Reader:
    def __init__(
        self,
        open_store: Callable[[int], ReadableStore | None],
        applied_offset: Callable[[int], int],
        partitions: Callable[[], int],
    ) -> None:
        """`open_store`: a partition's view, None if it is not held here; `applied_offset`: how
        far the view has applied a partition, as the caller's thread knows it (the event loop's
        positions); `partitions`: the orders topic's count."""
        self._open_store = open_store
        self._applied_offset = applied_offset
        self._partitions = partitions

    def partition_of(self, user_id: str) -> int:
        return partition_for(user_id, self._partitions())

    def partition_for_read(self, user_id: str, token: ConsistencyToken | None) -> int:
        """The user's partition, once the token (if any) is known to be about it."""
        partitions = self._partitions()
        partition = partition_for(user_id, partitions)
        if token is not None:
            if token.partition >= partitions:
                raise UnknownPartition(token.partition, partitions)
            if token.partition != partition:
                raise ForeignToken(token.partition, partition)
        return partition

    def current_token(self, user_id: str) -> ConsistencyToken:
        """The token `snapshot` would give now, from one point read (no consistent state fixed):
        enough to know whether an answer rendered at a token is still current."""
        partition = self.partition_of(user_id)
        position = self._applied_offset(partition)
        store = self._open_store(partition)
        if store is None:
            raise PartitionNotHeld(partition)
        version = read_version(store, user_id)
        return ConsistencyToken(partition, position if version is None else version)

    def snapshot(self, user_id: str) -> UserSnapshot:
        """The user's view as it is now, and its token: the user's version (the offset of
        their last event applied, the same on every copy), else the partition's position."""
        partition = self.partition_of(user_id)
        # The position is read first: the snapshot read after it holds at least that much.
        position = self._applied_offset(partition)
        store = self._open_store(partition)
        if store is None:
            raise PartitionNotHeld(partition)
        reader = store.reader()
        version = reader.version(user_id)
        return UserSnapshot(
            reader, ConsistencyToken(partition, position if version is None else version)
        )

    def items(
        self,
        user_id: str,
        group: str | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_LINES,
        at: UserSnapshot | None = None,
    ) -> ItemsPage:
        """Each group's summary and first page of lines; with a cursor, the next page of its
        group only.
        """
        after = None if cursor is None else cursors.lines_cursor(cursor, user_id, group)
        groups: Sequence[str] = GROUPS if group is None and after is None else ()
        if after is not None:
            groups = (after.group,)
        elif group is not None:
            groups = (group,)
        reader, token = at if at is not None else self.snapshot(user_id)
        summaries = reader.summaries(user_id, groups)
        pages = {}
        for name in groups:
            start = None if after is None else (after.sku, after.unit_price_minor)
            found = reader.lines(user_id, name, start, limit + 1)
            lines, more = found[:limit], len(found) > limit
            next_cursor = None
            if more:
                last = lines[-1][0]
                next_cursor = cursors.encode(
                    cursors.LinesCursor(user_id, name, last.sku, last.unit_price_minor)
                )
            pages[name] = GroupPage(summaries[name] or EMPTY_SUMMARY, lines, next_cursor)
        return ItemsPage(pages, token)

    def orders(
        self,
        user_id: str,
        cursor: str | None = None,
        limit: int = DEFAULT_ORDERS,
        at: UserSnapshot | None = None,
    ) -> OrdersPage:
        """A page of the user's orders, newest first. Decodes up to `limit` events: callers on
        the event loop run it in a worker thread.
        """
        before = None if cursor is None else cursors.orders_cursor(cursor, user_id).sequence
        reader, token = at if at is not None else self.snapshot(user_id)
        found = reader.newest_orders(user_id, before, limit + 1)
        page, more = found[:limit], len(found) > limit
        next_cursor = None
        if more:
            next_cursor = cursors.encode(cursors.OrdersCursor(user_id, page[-1][0]))
        return OrdersPage([decode(value) for _, value in page], next_cursor, token)

    def order(
        self, user_id: str, order_id: str, at: UserSnapshot | None = None
    ) -> tuple[OrderPlaced, ConsistencyToken]:
        """The order in the newest shape, whichever version its record was written in."""
        reader, token = at if at is not None else self.snapshot(user_id)
        value = reader.order(user_id, order_id)
        if value is None:
            raise OrderNotFound(user_id, order_id)
        return decode(value), token
