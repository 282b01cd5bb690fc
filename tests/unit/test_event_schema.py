"""The OrderPlaced wire format and its committed JSON Schema."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from shared import schema
from shared.events import (
    LineItem,
    OrderPlaced,
    decode,
    encode,
    headers,
    json_schema,
)
from shared.exceptions import EventDecodeError


def _event() -> OrderPlaced:
    return OrderPlaced(
        event_id=uuid.uuid4(),
        order_id=uuid.uuid4(),
        user_id="alice",
        placed_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        items=(LineItem(sku="SKU-1", name="Tea", unit_price_minor=499, quantity=2),),
    )


def test_committed_schema_matches_the_model() -> None:
    path = schema.SCHEMA_PATH
    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    assert committed == schema.render(), (
        f"{schema.SCHEMA_PATH.name} differs from shared.events.OrderPlaced; "
        f"regenerate it with `{schema.REGENERATE}` and commit it"
    )


def test_committed_schema_is_the_serialisation_schema() -> None:
    assert json.loads(schema.SCHEMA_PATH.read_text(encoding="utf-8")) == json_schema()


def test_encode_decode_round_trip() -> None:
    event = _event()
    assert decode(encode(event)) == event


def test_headers_name_the_type_and_version() -> None:
    assert dict(headers()) == {"event_type": b"OrderPlaced", "schema_version": b"1"}


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (None, "invalid_json"),
        (b"{", "invalid_json"),
        (b"[]", "schema"),
        (b'{"schema_version": 0}', "unknown_version"),
        (b'{"schema_version": "2"}', "unknown_version"),
        (b'{"schema_version": 2}', "future_version"),
        (b'{"schema_version": 1}', "schema"),
    ],
)
def test_bad_records_name_their_failure(raw: bytes | None, kind: str) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode(raw)
    assert caught.value.kind == kind
