"""The view's key layout and encoding, over any key-value store that writes a batch atomically.

A commit writes the changed views, the applied orders and each partition's last applied offset
in one atomic write, so the view on disk always equals the fold of the events up to its offsets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import orjson

from query_service.projection import AppliedOrder, BatchResult, ItemsView, applied_order
from shared.events import decode

_VIEW = b"v:"
_ORDER = b"o:"
OFFSET_PREFIX = b"p:"
TOPIC_KEY = b"m:topic"


def view_key(user_id: str) -> bytes:
    return _VIEW + user_id.encode()


def order_key(user_id: str, order_id: str) -> bytes:
    # A user id never contains '/', so the key is unambiguous.
    return _ORDER + user_id.encode() + b"/" + order_id.encode()


def offset_key(partition: int) -> bytes:
    return OFFSET_PREFIX + str(partition).encode()


class KeyValueViewStore:
    """The `ViewStore` port over raw keys: subclasses supply the batched read and atomic write."""

    def __init__(self) -> None:
        self._offsets: dict[int, int] = {}

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """The values of `keys`, None where a key is absent."""
        raise NotImplementedError

    def write(self, puts: list[tuple[bytes, bytes]]) -> None:
        """Write every pair or none."""
        raise NotImplementedError

    def views(self, user_ids: Sequence[str]) -> list[ItemsView | None]:
        raw = self.get_many([view_key(user_id) for user_id in user_ids])
        return [None if value is None else cast(ItemsView, orjson.loads(value)) for value in raw]

    def order(self, user_id: str, order_id: str) -> AppliedOrder | None:
        (value,) = self.get_many([order_key(user_id, order_id)])
        return None if value is None else applied_order(decode(value), order_id)

    def applied_offsets(self) -> dict[int, int]:
        return dict(self._offsets)

    def commit(self, result: BatchResult, offsets: Mapping[int, int]) -> None:
        dumps = orjson.dumps
        puts = [(view_key(user_id), dumps(view)) for user_id, view in result.views.items()]
        # An order's record is its event's value as it came from the topic, already JSON.
        puts += [(order_key(e.user_id, e.order_id), e.value) for e in result.applied]
        puts += [(offset_key(p), str(offset).encode()) for p, offset in offsets.items()]
        self.write(puts)
        self._offsets.update(offsets)

    def load_offsets(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Cache the offsets from the store's `p:` records, read once when it opens."""
        self._offsets = {int(key[len(OFFSET_PREFIX) :]): int(value) for key, value in items}
