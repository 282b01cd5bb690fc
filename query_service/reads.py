"""The read side: honour a consistency token, then read the view at a known position."""

from __future__ import annotations

from collections.abc import Callable

from query_service.exceptions import OrderNotFound, UnknownPartition
from query_service.ports import ViewStore
from query_service.positions import Positions
from query_service.projection import AppliedOrder, ItemsView, empty_view
from query_service.partitioning import partition_for
from shared.tokens import ConsistencyToken


class Reader:
    def __init__(
        self, store: ViewStore, positions: Positions, partitions: Callable[[], int]
    ) -> None:
        self._store = store
        self._positions = positions
        self._partitions = partitions

    def partition_of(self, user_id: str) -> int:
        return partition_for(user_id, self._partitions())

    async def wait_for(self, token: ConsistencyToken | None, wait_s: float) -> None:
        """Return once the view holds what `token` stands for; NotYetConsistent after `wait_s`."""
        if token is None:
            return
        partitions = self._partitions()
        if token.partition >= partitions:
            raise UnknownPartition(token.partition, partitions)
        await self._positions.wait_for(token.partition, token.offset, wait_s)

    def position(self, user_id: str) -> ConsistencyToken:
        partition = self.partition_of(user_id)
        return ConsistencyToken(partition, self._positions.applied_offset(partition))

    def items(self, user_id: str) -> tuple[ItemsView, ConsistencyToken]:
        # The position is read first: the view read after it holds at least that much.
        token = self.position(user_id)
        (view,) = self._store.views([user_id])
        return (view if view is not None else empty_view()), token

    def order(self, user_id: str, order_id: str) -> tuple[AppliedOrder, ConsistencyToken]:
        token = self.position(user_id)
        order = self._store.order(user_id, order_id)
        if order is None:
            raise OrderNotFound(user_id, order_id)
        return order, token
