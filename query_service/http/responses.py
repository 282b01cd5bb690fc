"""What the query service answers: the response models, and the mapping from the reader's pages
to them. Money becomes text here and nowhere else.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel

from query_service.cluster.model import ClusterView
from query_service.http.positions import Positions, ViewChange
from query_service.ports import HandoffProgress, Holding
from query_service.view.projection import Line, LineId, Summary
from query_service.view.reads import GroupPage, ItemsPage, OrdersPage
from shared.events import Channel, Currency, OrderPlaced
from shared.http import Health
from shared.money import PriceGroup, minor_to_pounds
from shared.tokens import ConsistencyToken


class LineOut(BaseModel):
    sku: str
    name: str
    unit_price: str
    quantity: int
    order_count: int


class GroupOut(BaseModel):
    item_count: int
    total: str
    line_count: int
    lines: list[LineOut]
    next_cursor: str | None


class ItemsOut(BaseModel):
    user_id: str
    groups: dict[PriceGroup, GroupOut]
    consistency_token: str


class OrderItemOut(BaseModel):
    sku: str
    name: str
    unit_price: str
    currency: Currency
    quantity: int
    price_group: PriceGroup


class OrderOut(BaseModel):
    order_id: str
    user_id: str
    placed_at: str
    channel: Channel
    items: list[OrderItemOut]
    consistency_token: str


class ListedOrderOut(BaseModel):
    order_id: str
    placed_at: str
    channel: Channel
    items: list[OrderItemOut]


class OrdersOut(BaseModel):
    user_id: str
    orders: list[ListedOrderOut]
    next_cursor: str | None
    consistency_token: str


class GroupSummaryOut(BaseModel):
    item_count: int
    total: str
    line_count: int


class GroupedLineOut(LineOut):
    group: PriceGroup


class ItemsDeltaOut(BaseModel):
    """A live change: the new state of each line and group summary that changed."""

    lines: list[GroupedLineOut]
    groups: dict[PriceGroup, GroupSummaryOut]


class PartitionOut(BaseModel):
    applied_offset: int
    lag: int
    ready: bool
    # Why the partition is stopped, if it is: an event newer than this code at that offset.
    paused: str | None = None


class ReadyOut(Health):
    instance_id: str
    # The partitions this instance holds: how far each is applied, and whether it caught up.
    partitions: dict[int, PartitionOut]
    applied_offsets: dict[int, int]


class MemberOut(BaseModel):
    instance_id: str
    url: str
    ready: bool
    partitions: dict[int, PartitionOut]
    # Let go, still on disk for a while: their applied offsets (a copy to hand over).
    kept: dict[int, int] = {}


class HandoffOut(BaseModel):
    """A checkpoint this instance is receiving."""

    source: str
    received_bytes: int
    seconds: float


class ClusterOut(BaseModel):
    instance_id: str
    replicas: int
    members: list[MemberOut]
    # Who should hold each partition under the current placement.
    placement: dict[int, list[str]]
    # Partitions this instance is receiving as checkpoints.
    handoffs: dict[int, HandoffOut] = {}


def ready_out(
    instance_id: str, holding: Holding, positions: Positions, *, failed: bool
) -> ReadyOut:
    held = holding.partitions
    ready = holding.ready and not failed
    waiting = sorted(p for p, state in held.items() if not state.ready)
    paused = {p: state.paused for p, state in held.items() if state.paused is not None}
    if ready:
        detail = None
    elif failed:
        detail = "a part of the instance stopped; see the log"
    elif paused:
        detail = "; ".join(
            f"partition {p} paused at offset {stop.offset}: {stop.reason}"
            for p, stop in sorted(paused.items())
        )
    elif waiting:
        detail = f"catching up with partitions {waiting}"
    else:
        detail = "waiting for a placement from the cluster"
    return ReadyOut(
        status="ready" if ready else "not_ready",
        detail=detail,
        instance_id=instance_id,
        partitions={
            p: PartitionOut(
                applied_offset=positions.applied_offset(p),
                lag=state.lag,
                ready=state.ready,
                paused=None if state.paused is None else state.paused.reason,
            )
            for p, state in sorted(held.items())
        },
        applied_offsets=positions.applied_offsets(),
    )


def cluster_out(
    view: ClusterView, handoffs: Mapping[int, HandoffProgress] | None = None
) -> ClusterOut:
    placed = view.placement()
    now = time.monotonic()
    return ClusterOut(
        instance_id=view.me,
        replicas=view.replicas,
        members=[
            MemberOut(
                instance_id=member.instance_id,
                url=member.url,
                ready=member.ready,
                partitions={
                    p: PartitionOut(applied_offset=s.applied, lag=s.lag, ready=s.ready)
                    for p, s in sorted(member.partitions.items())
                },
                kept=dict(sorted(member.kept.items())),
            )
            for member in sorted(view.members.values(), key=lambda m: m.instance_id)
        ],
        placement={
            p: sorted(m for m, held in placed.items() if p in held) for p in range(view.partitions)
        },
        handoffs={
            p: HandoffOut(
                source=h.source,
                received_bytes=h.received_bytes,
                seconds=round(now - h.started, 3),
            )
            for p, h in sorted((handoffs or {}).items())
        },
    )


class PageAuthOut(BaseModel):
    """Where and how the page signs in: authorization code with PKCE at `issuer`."""

    issuer: str
    client_id: str
    resource: str
    scope: str


class PageConfigOut(BaseModel):
    command_service_url: str
    # None when AUTH_DISABLED: the page then asks for a user id instead of signing in.
    auth: PageAuthOut | None = None


class StreamTicketOut(BaseModel):
    ticket: str
    expires_at: int


def line_out(line_id: LineId, line: Line) -> LineOut:
    return LineOut(
        sku=line_id.sku,
        name=line.name,
        unit_price=minor_to_pounds(line_id.unit_price_minor),
        quantity=line.quantity,
        order_count=line.order_count,
    )


def summary_out(summary: Summary) -> GroupSummaryOut:
    return GroupSummaryOut(
        item_count=summary.item_count,
        total=minor_to_pounds(summary.total_minor),
        line_count=summary.line_count,
    )


def group_out(page: GroupPage) -> GroupOut:
    return GroupOut(
        **summary_out(page.summary).model_dump(),
        lines=[line_out(line_id, line) for line_id, line in page.lines],
        next_cursor=page.next_cursor,
    )


def items_out(user_id: str, page: ItemsPage) -> ItemsOut:
    return ItemsOut(
        user_id=user_id,
        groups={PriceGroup(name): group_out(group) for name, group in page.groups.items()},
        consistency_token=page.token.encode(),
    )


def items_json(user_id: str, page: ItemsPage) -> bytes:
    """`items_out(user_id, page)` as pydantic would write it, without building the models: the
    hot read's answer (a unit test holds the two byte-equal)."""
    groups: dict[str, Any] = {}
    for name, group in page.groups.items():
        summary = group.summary
        groups[name] = {
            "item_count": summary.item_count,
            "total": minor_to_pounds(summary.total_minor),
            "line_count": summary.line_count,
            "lines": [
                {
                    "sku": line_id.sku,
                    "name": line.name,
                    "unit_price": minor_to_pounds(line_id.unit_price_minor),
                    "quantity": line.quantity,
                    "order_count": line.order_count,
                }
                for line_id, line in group.lines
            ],
            "next_cursor": group.next_cursor,
        }
    return orjson.dumps(
        {"user_id": user_id, "groups": groups, "consistency_token": page.token.encode()}
    )


def delta_out(change: ViewChange) -> ItemsDeltaOut:
    return ItemsDeltaOut(
        lines=[
            GroupedLineOut(**line_out(line_id, line).model_dump(), group=PriceGroup(line_id.group))
            for line_id, line in sorted(change.lines.items())
        ],
        groups={PriceGroup(g): summary_out(s) for g, s in change.summaries.items()},
    )


def _items_out(event: OrderPlaced) -> list[OrderItemOut]:
    return [
        OrderItemOut(
            sku=item.sku,
            name=item.name,
            unit_price=minor_to_pounds(item.unit_price.amount_minor),
            currency=item.unit_price.currency,
            quantity=item.quantity,
            price_group=item.price_group,
        )
        for item in event.items
    ]


def _placed_at(event: OrderPlaced) -> str:
    # One form whatever form the producer wrote: ISO 8601 with a numeric UTC offset.
    return event.placed_at.isoformat()


def order_out(event: OrderPlaced, token: ConsistencyToken) -> OrderOut:
    return OrderOut(
        order_id=str(event.order_id),
        user_id=event.user_id,
        placed_at=_placed_at(event),
        channel=event.channel,
        items=_items_out(event),
        consistency_token=token.encode(),
    )


def orders_out(user_id: str, page: OrdersPage) -> OrdersOut:
    return OrdersOut(
        user_id=user_id,
        orders=[
            ListedOrderOut(
                order_id=str(event.order_id),
                placed_at=_placed_at(event),
                channel=event.channel,
                items=_items_out(event),
            )
            for event in page.orders
        ],
        next_cursor=page.next_cursor,
        consistency_token=page.token.encode(),
    )
