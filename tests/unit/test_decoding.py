"""The hot-path decoder against the model: the same records accepted, with the same content,
and the same records refused, for the same reason."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from query_service.view.decoding import Placed, decode_placed, placed
from shared.events import (
    CHANNELS,
    CURRENCY,
    EVENT_TYPE,
    MAX_ITEMS,
    MAX_NAME_LENGTH,
    MAX_QUANTITY,
    MAX_SKU_LENGTH,
    MAX_USER_ID_LENGTH,
    USER_ID_PATTERN,
    LineItem,
    LineItemV1,
    Money,
    OrderPlaced,
    OrderPlacedV1,
    decode,
)
from shared.exceptions import EventDecodeError
from shared.money import MAX_UNIT_PRICE_MINOR


def outcome_of_model(raw: bytes | None) -> tuple[str, Any]:
    try:
        event = decode(raw)
    except EventDecodeError as exc:
        return "refused", (exc.kind, exc.message)
    assert raw is not None
    # The record kept for an order must read back as the event the model accepted.
    return "accepted", (placed(event, b"")[:3], event)


def outcome_of_fast(raw: bytes | None) -> tuple[str, Any]:
    try:
        result = decode_placed(raw)
    except EventDecodeError as exc:
        return "refused", (exc.kind, exc.message)
    assert isinstance(result, Placed)
    return "accepted", (result[:3], decode(result.value))


def assert_same(raw: bytes | None) -> None:
    assert outcome_of_fast(raw) == outcome_of_model(raw)


uuids = st.uuids().map(str)
user_ids = st.from_regex(USER_ID_PATTERN, fullmatch=True)
timezones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-23, minutes=-59))]
)
times = st.datetimes(timezones=timezones).map(lambda t: t.isoformat())
skus = st.one_of(st.from_regex(r"\ASKU-[0-9]{1,6}\Z"), st.text(min_size=1, max_size=MAX_SKU_LENGTH))
names = st.one_of(
    st.from_regex(r"\AItem [0-9]{1,3}\Z"), st.text(min_size=1, max_size=MAX_NAME_LENGTH)
)
amounts = st.integers(1, MAX_UNIT_PRICE_MINOR)
quantities = st.integers(1, MAX_QUANTITY)
line_items_v1 = st.fixed_dictionaries(
    {"sku": skus, "name": names, "unit_price_minor": amounts, "quantity": quantities}
)
money = st.fixed_dictionaries({"amount_minor": amounts, "currency": st.just(CURRENCY)})
line_items_v2 = st.fixed_dictionaries(
    {"sku": skus, "name": names, "unit_price": money, "quantity": quantities}
)
head = {"event_id": uuids, "order_id": uuids, "user_id": user_ids, "placed_at": times}
events_v1 = st.fixed_dictionaries(
    {
        **head,
        "schema_version": st.just(1),
        "items": st.lists(line_items_v1, min_size=1, max_size=5),
    },
    optional={"event_type": st.just(EVENT_TYPE), "currency": st.just(CURRENCY)},
)
events_v2 = st.fixed_dictionaries(
    {
        **head,
        "schema_version": st.just(2),
        "channel": st.sampled_from(CHANNELS),
        "items": st.lists(line_items_v2, min_size=1, max_size=5),
    },
    optional={"event_type": st.just(EVENT_TYPE)},
)
events = st.one_of(events_v1, events_v2)

odd_values = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            False,
            0,
            1,
            -1,
            1.0,
            0.5,
            "",
            " ",
            "1",
            [],
            {},
            [1],
            {"a": 1},
            MAX_QUANTITY,
            MAX_QUANTITY + 1,
            MAX_UNIT_PRICE_MINOR,
            MAX_UNIT_PRICE_MINOR + 1,
            2**64 - 1,
            -(2**63),
            "OrderPlaced",
            "orderplaced",
            "GBP",
            "gbp",
            "EUR",
            2,
            3,
            "2",
            "web",
            "app",
            "API",
            {"amount_minor": 700, "currency": "GBP"},
            {"amount_minor": 700},
            {"amount_minor": 700, "currency": "GBP", "extra": 1},
            [],
            [[]],
            [{}],
            str(uuid.uuid4()).upper(),
            uuid.uuid4().hex,
            f"urn:uuid:{uuid.uuid4()}",
            f"{{{uuid.uuid4()}}}",
            "00000000-0000-0000-0000-000000000000",
            "not-a-uuid",
            "alice",
            "al/ice",
            "alice\n",
            "a" * MAX_USER_ID_LENGTH,
            "a" * (MAX_USER_ID_LENGTH + 1),
            "ü",
            " alice",
            "2026-01-02T03:04:05Z",
            "2026-01-02T03:04:05+00:00",
            "2026-01-02T03:04:05",
            "2026-01-02T03:04:05.123456789Z",
            "2026-01-02t03:04:05z",
            "2026-01-02 03:04:05Z",
            "2026-01-02",
            "2026-01-02T24:00:00Z",
            "2016-12-31T23:59:60Z",
            "2026-02-30T00:00:00Z",
            "2026-01-02T03:04:05-00:00",
            "2026-01-02T03:04:05+24:00",
            "2026-01-02T03:04:05+0100",
            "20260102T030405Z",
            "2026-W01-1T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+01:00",
            1767322445,
            "x\x00y",
            "x\x1fy",
            "x\x7fy",
            "x\x85y",
            "x\x9fy",
            "\ttab",
            "tab\t",
            "\u00a0nbsp",
            "nbsp\u00a0",
            "\u2003em",
            "em\u2003",
            "\u3000",
            "zero\u200bwidth",
            "\u180e",
            "trailing ",
            " leading",
            "  ",
            "a" * MAX_NAME_LENGTH,
            "a" * (MAX_NAME_LENGTH + 1),
            "é" * MAX_SKU_LENGTH,
            "é" * (MAX_SKU_LENGTH + 1),
            "\U0001f600",
        ]
    ),
    st.text(max_size=70),
    st.integers(-(2**63), 2**64 - 1),
)

# Each version's fields (and an unknown one) at the top, in an item, in an item's price.
top_fields = {1: [*OrderPlacedV1.model_fields, "extra"], 2: [*OrderPlaced.model_fields, "extra"]}
item_fields = {1: [*LineItemV1.model_fields, "extra"], 2: [*LineItem.model_fields, "extra"]}
money_fields = [*Money.model_fields, "extra"]


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    event = draw(events)
    version = event["schema_version"]
    items = event["items"]
    if draw(st.integers(0, 9)) == 0:
        count = draw(st.sampled_from([MAX_ITEMS, MAX_ITEMS + 1]))
        event["items"] = items = [dict(items[0]) for _ in range(count)]
    for _ in range(draw(st.integers(1, 3))):
        target: dict[str, Any] = event
        fields = top_fields[version]
        where = draw(st.integers(0, 2))
        if where >= 1:
            target = draw(st.sampled_from(items))
            fields = item_fields[version]
        if where == 2 and isinstance(target.get("unit_price"), dict):
            target = target["unit_price"] = dict(target["unit_price"])
            fields = money_fields
        name = draw(st.sampled_from(fields))
        if draw(st.integers(0, 4)) == 0:
            target.pop(name, None)
        else:
            target[name] = draw(odd_values)
    return event


@settings(max_examples=500, deadline=None)
@given(events)
def test_events_decode_alike(event: dict[str, Any]) -> None:
    assert_same(orjson.dumps(event))


@settings(max_examples=300, deadline=None)
@given(events, st.from_regex(r"\ASKU-[0-9]{1,6}\Z"), st.from_regex(r"\AItem [0-9]{1,3}\Z"))
def test_valid_events_are_accepted(event: dict[str, Any], sku: str, name: str) -> None:
    for item in event["items"]:
        item.update(sku=sku, name=name)
    raw = orjson.dumps(event)
    assert outcome_of_fast(raw) == outcome_of_model(raw)
    assert outcome_of_fast(raw)[0] == "accepted"


@settings(max_examples=700, deadline=None)
@given(mutated_events())
def test_mutated_events_decode_alike(event: dict[str, Any]) -> None:
    assert_same(orjson.dumps(event))


def _valid(**changes: Any) -> bytes:
    event = {
        "event_type": "OrderPlaced",
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "order_id": str(uuid.uuid4()),
        "user_id": "alice",
        "placed_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat(),
        "currency": "GBP",
        "items": [{"sku": "S", "name": "Spoon", "unit_price_minor": 700, "quantity": 2}],
    }
    return orjson.dumps({**event, **changes})


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
@example(b"")
@example(b"null")
@example(b"[]")
@example(b'"text"')
@example(b"\xff\xfe")
@example(_valid().replace(b'"Spoon"', b'"\\ud800"'))
@example(_valid().replace(b'"Spoon"', b'"Sp\\udc00oon"'))
@example(_valid().replace(b'"Spoon"', b'"\\ud83d\\ude00"'))
@example(_valid().replace(b'"Spoon"', b'"Sp\\u0000oon"'))
@example(_valid().replace(b'"Spoon"', b'"Sp\xed\xa0\x80oon"'))
@example(_valid().replace(b'"alice"', b'"alice","user_id":"bob"'))
@example(_valid().replace(b'"schema_version":1', b'"schema_version":1.0'))
@example(_valid().replace(b'"quantity":2', b'"quantity":2.0'))
@example(_valid().replace(b'"quantity":2', b'"quantity":1e400'))
@example(_valid().replace(b'"quantity":2', b'"quantity":NaN'))
@example(_valid() + b" ")
@example(_valid() + b"x")
@example(b"\xef\xbb\xbf" + _valid())
def test_any_bytes_decode_alike(raw: bytes) -> None:
    assert_same(raw)


def test_no_value_is_invalid_json_for_both() -> None:
    assert outcome_of_fast(None) == outcome_of_model(None)
    assert outcome_of_fast(None)[1][0] == "invalid_json"


def test_kinds_are_kept() -> None:
    assert outcome_of_fast(b"{")[1][0] == "invalid_json"
    assert outcome_of_fast(b"[]")[1][0] == "schema"
    assert outcome_of_fast(_valid(schema_version=0))[1][0] == "unknown_version"
    assert outcome_of_fast(_valid(schema_version=3))[1][0] == "future_version"
    assert outcome_of_fast(_valid(schema_version=2))[1][0] == "schema"  # a v1 body named v2
    assert outcome_of_fast(_valid(user_id="no/slash"))[1][0] == "schema"


def test_a_plain_record_keeps_its_value_and_another_is_kept_as_the_model_reads_it() -> None:
    raw = _valid()
    assert decode_placed(raw).value is raw
    padded = decode_placed(
        _valid(items=[{"sku": "S", "name": " Spoon ", "unit_price_minor": 7, "quantity": 1}])
    )
    assert b'"name":"Spoon"' in padded.value


@given(st.sampled_from(["placed_at", "event_id", "order_id", "user_id"]), odd_values)
@settings(max_examples=400, deadline=None)
def test_odd_top_level_values_decode_alike(field: str, value: Any) -> None:
    assert_same(_valid(**{field: value}))


@given(st.sampled_from(item_fields[1]), odd_values)
@settings(max_examples=400, deadline=None)
def test_odd_item_values_decode_alike(field: str, value: Any) -> None:
    item = {"sku": "S", "name": "Spoon", "unit_price_minor": 700, "quantity": 2, field: value}
    assert_same(_valid(items=[item]))


def _valid_v2(**changes: Any) -> bytes:
    event = orjson.loads(_valid())
    del event["currency"]
    event |= {"schema_version": 2, "channel": "app"}
    event["items"] = [
        {"sku": "S", "name": "Spoon", "unit_price": {"amount_minor": 700, "currency": "GBP"}}
        | {"quantity": 2}
    ]
    return orjson.dumps({**event, **changes})


@given(st.sampled_from(["channel", "placed_at", "user_id", "currency"]), odd_values)
@settings(max_examples=300, deadline=None)
def test_odd_v2_values_decode_alike(field: str, value: Any) -> None:
    assert_same(_valid_v2(**{field: value}))


@given(st.sampled_from(money_fields), odd_values)
@settings(max_examples=300, deadline=None)
def test_odd_money_values_decode_alike(field: str, value: Any) -> None:
    price = {"amount_minor": 700, "currency": "GBP", field: value}
    item = {"sku": "S", "name": "Spoon", "unit_price": price, "quantity": 2}
    assert_same(_valid_v2(items=[item]))


def test_a_v2_record_is_read_fast_and_kept_as_written() -> None:
    raw = _valid_v2()
    found = decode_placed(raw)
    assert found.value is raw
    assert found.items == (("S", "Spoon", 700, 2),)
