"""Page cursors: opaque to clients, and bound to the user and the listing they came from."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import orjson

from query_service.exceptions import MalformedCursor
from query_service.view.projection import GROUPS


@dataclass(frozen=True, slots=True)
class LinesCursor:
    """After this line of one group: (sku, unit price) is the last line of the previous page."""

    user_id: str
    group: str
    sku: str
    unit_price_minor: int


@dataclass(frozen=True, slots=True)
class OrdersCursor:
    """Orders older than `sequence` (the user's orders are numbered from 1 as applied)."""

    user_id: str
    sequence: int


def encode(cursor: LinesCursor | OrdersCursor) -> str:
    if isinstance(cursor, LinesCursor):
        body = ["l", cursor.user_id, cursor.group, cursor.sku, cursor.unit_price_minor]
    else:
        body = ["o", cursor.user_id, cursor.sequence]
    return base64.urlsafe_b64encode(orjson.dumps(body)).decode().rstrip("=")


def _fields(text: str) -> list[object]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        body = orjson.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise MalformedCursor(text, "it is not a cursor this service gave out") from exc
    if not isinstance(body, list) or not body:
        raise MalformedCursor(text, "it is not a cursor this service gave out")
    return body


def lines_cursor(text: str, user_id: str, group: str | None) -> LinesCursor:
    """The cursor of a page of `user_id`'s lines (of `group`, if the request names one)."""
    body = _fields(text)
    match body:
        case ["l", str(owner), str(of_group), str(sku), int(price)] if of_group in GROUPS:
            pass
        case _:
            raise MalformedCursor(text, "it is not a cursor of a page of items")
    if owner != user_id or (group is not None and group != of_group):
        raise MalformedCursor(text, f"it pages {owner}'s {of_group} items, not this listing")
    return LinesCursor(owner, of_group, sku, price)


def orders_cursor(text: str, user_id: str) -> OrdersCursor:
    body = _fields(text)
    match body:
        case ["o", str(owner), int(sequence)] if sequence > 0:
            pass
        case _:
            raise MalformedCursor(text, "it is not a cursor of a page of orders")
    if owner != user_id:
        raise MalformedCursor(text, f"it pages {owner}'s orders, not this listing")
    return OrdersCursor(owner, sequence)
