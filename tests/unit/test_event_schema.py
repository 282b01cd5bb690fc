"""The OrderPlaced wire format in each readable version, its committed JSON Schemas, and the
upcasting of every older version to the newest."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import schema
from shared.events import (
    CURRENCY,
    LATEST_VERSION,
    READABLE_VERSIONS,
    V1_CHANNEL,
    LineItem,
    Money,
    OrderPlaced,
    OrderPlacedV1,
    decode,
    encode,
    headers,
    json_schema,
    upcast,
    validate_written,
    written_as,
)
from shared.exceptions import EventDecodeError
from tests import factories


def _event() -> OrderPlaced:
    return OrderPlaced(
        event_id=uuid.uuid4(),
        order_id=uuid.uuid4(),
        user_id="alice",
        placed_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        channel="app",
        items=(
            LineItem(
                sku="SKU-1",
                name="Tea",
                unit_price=Money(amount_minor=499, currency=CURRENCY),
                quantity=2,
            ),
        ),
    )


@pytest.mark.parametrize("version", READABLE_VERSIONS)
def test_each_committed_schema_matches_its_model(version: int) -> None:
    path = schema.schema_path(version)
    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    assert committed == schema.render(version), (
        f"{path.name} differs from its model; regenerate it with `{schema.REGENERATE}`"
    )
    assert json.loads(committed) == json_schema(version)


def test_the_check_names_a_stale_schema(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert schema.main(["schema", "--check"]) == 0
    monkeypatch.setattr(schema, "render", lambda version: "{}\n")
    assert schema.main(["schema", "--check"]) == 1
    assert "order_placed.v1.json differs from its model" in capsys.readouterr().out


def test_the_newest_version_is_the_newest_model() -> None:
    assert LATEST_VERSION == max(READABLE_VERSIONS) == _event().schema_version


def test_encode_decode_round_trip() -> None:
    event = _event()
    assert decode(encode(event)) == event


def test_a_v1_event_reads_as_v2_with_its_price_as_money_and_the_documented_channel() -> None:
    event = _event()
    v1 = written_as(event, 1)
    assert isinstance(v1, OrderPlacedV1)
    raw = orjson.loads(encode(v1))
    assert raw["schema_version"] == 1
    assert raw["currency"] == "GBP"
    assert raw["items"][0]["unit_price_minor"] == 499
    read = decode(encode(v1))
    assert read == event.model_copy(update={"channel": V1_CHANNEL})
    assert read.items[0].unit_price == Money(amount_minor=499, currency="GBP")


orders = st.builds(
    lambda seed, user: factories.random_order(random.Random(seed), user),
    st.integers(0, 2**32),
    st.sampled_from(["alice", "bob"]),
)


@settings(max_examples=200, deadline=None)
@given(orders)
def test_v1_written_then_upcast_is_the_order_but_its_channel(event: OrderPlaced) -> None:
    back = upcast(validate_written(orjson.loads(encode(written_as(event, 1)))))
    assert back == event.model_copy(update={"channel": V1_CHANNEL})
    assert written_as(event, 2) is event


def test_headers_name_the_type_and_version() -> None:
    assert dict(headers()) == {"event_type": b"OrderPlaced", "schema_version": b"2"}
    assert dict(headers(1)) == {"event_type": b"OrderPlaced", "schema_version": b"1"}


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (None, "invalid_json"),
        (b"{", "invalid_json"),
        (b"[]", "schema"),
        (b'{"schema_version": 0}', "unknown_version"),
        (b'{"schema_version": "2"}', "unknown_version"),
        (b'{"schema_version": 3}', "future_version"),
        (b'{"schema_version": 1}', "schema"),
        (b'{"schema_version": 2}', "schema"),
    ],
)
def test_bad_records_name_their_failure(raw: bytes | None, kind: str) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode(raw)
    assert caught.value.kind == kind
