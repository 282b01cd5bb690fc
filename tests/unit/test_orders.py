"""The order request's rules and the event it becomes: pure, property-tested."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from command_service.exceptions import InvalidOrder, MalformedJson
from command_service.orders import (
    PlaceOrderRequest,
    accepted,
    order_id_for,
    parse_place_order,
    to_event,
)
from shared.money import MAX_UNIT_PRICE_MINOR, PriceGroup, minor_to_pounds

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def _body(**overrides: Any) -> dict[str, Any]:
    item = {"sku": "SKU-1", "name": "Tea", "unit_price": "4.99", "quantity": 1}
    item.update(overrides.pop("item", {}))
    return {"user_id": "alice", "items": [item], **overrides}


def _raw(obj: Any) -> bytes:
    # The stdlib writes Decimals as numbers only via str; JSON numbers here are written verbatim.
    return json.dumps(obj, default=str).encode()


def _with_price_literal(literal: str) -> bytes:
    return (
        b'{"user_id": "alice", "items": [{"sku": "S", "name": "N", "quantity": 1, "unit_price": '
        + literal.encode()
        + b"}]}"
    )


def _refusal(raw: bytes) -> InvalidOrder:
    with pytest.raises(InvalidOrder) as caught:
        parse_place_order(raw)
    return caught.value


def _locs(error: InvalidOrder) -> set[tuple[str | int, ...]]:
    return {issue.loc for issue in error.issues}


@given(st.integers(min_value=1, max_value=MAX_UNIT_PRICE_MINOR), st.booleans())
def test_every_whole_pence_price_is_held_exactly(minor: int, as_number: bool) -> None:
    literal = minor_to_pounds(minor) if as_number else json.dumps(minor_to_pounds(minor))
    event = to_event(parse_place_order(_with_price_literal(literal)), None, NOW)
    item = event.items[0]
    assert item.unit_price.amount_minor == minor
    assert item.price_group is PriceGroup.of(minor)


@pytest.mark.parametrize(
    ("price", "group"),
    [
        ("4.99", PriceGroup.CHEAP),
        ("5.00", PriceGroup.AFFORDABLE),
        ("5", PriceGroup.AFFORDABLE),
        ("50.00", PriceGroup.AFFORDABLE),
        ("50.01", PriceGroup.EXPENSIVE),
        ("1000000.00", PriceGroup.EXPENSIVE),
    ],
)
@pytest.mark.parametrize("as_number", [True, False])
def test_price_group_boundaries(price: str, group: PriceGroup, as_number: bool) -> None:
    literal = price if as_number else json.dumps(price)
    receipt = accepted(to_event(parse_place_order(_with_price_literal(literal)), None, NOW), "t")
    assert receipt.items[0].price_group is group
    assert Decimal(receipt.items[0].unit_price) == Decimal(price)


@pytest.mark.parametrize(
    "literal",
    [
        "0",
        "0.00",
        '"0"',
        "-1",
        '"-4.99"',
        "0.001",
        "4.999",
        '"4.999"',
        "4.999999999999999999",  # a float would round this to 5.00
        "1000000.01",
        '"1000000.01"',
        "1e400",
        "1e999999999",
        "1e-999999999",
        '"NaN"',
        '"Infinity"',
        '"-Infinity"',
        '"1e3"',
        '"1_000"',
        '""',
        '"abc"',
        '"\\uff11\\uff12"',
        "true",
        "false",
        "null",
        "[]",
        "{}",
    ],
)
def test_bad_prices_are_refused_at_the_price(literal: str) -> None:
    assert _locs(_refusal(_with_price_literal(literal))) == {("items", 0, "unit_price")}


@given(
    st.integers(min_value=1, max_value=10**10).filter(lambda n: n % 10 != 0),
    st.booleans(),
)
def test_three_or_more_decimals_are_refused(thousandths: int, as_number: bool) -> None:
    text = str(Decimal(thousandths) / 1000)
    literal = text if as_number else json.dumps(text)
    assert _locs(_refusal(_with_price_literal(literal))) == {("items", 0, "unit_price")}


@given(st.integers(min_value=MAX_UNIT_PRICE_MINOR + 1, max_value=10**30))
def test_huge_prices_are_refused(minor: int) -> None:
    refusal = _refusal(_with_price_literal(minor_to_pounds(minor)))
    assert "1000000.00" in str(refusal)


@pytest.mark.parametrize("quantity", [0, -1, 1001, 10**30, 1.5, 1.0, "2", True, False, None])
def test_bad_quantities_are_refused(quantity: Any) -> None:
    assert _locs(_refusal(_raw(_body(item={"quantity": quantity})))) == {("items", 0, "quantity")}


@given(st.integers(min_value=1, max_value=1000))
def test_quantities_in_range_are_kept(quantity: int) -> None:
    event = to_event(parse_place_order(_raw(_body(item={"quantity": quantity}))), None, NOW)
    assert event.items[0].quantity == quantity


@pytest.mark.parametrize("user_id", ["", "a" * 65, "a b", "ü", "a/b", "a\n", 7, "\ud800"])
def test_bad_user_ids_are_refused(user_id: Any) -> None:
    assert _locs(_refusal(_raw(_body(user_id=user_id)))) == {("user_id",)}


def test_an_order_naming_no_user_is_placed_for_the_one_given() -> None:
    # With authentication the user is the token's; the body need not name them.
    request = parse_place_order(_raw(_body(user_id=None)))
    assert to_event(request, None, NOW, "alice").user_id == "alice"
    with pytest.raises(InvalidOrder):
        to_event(request, None, NOW)


@given(st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True))
def test_valid_user_ids_are_kept(user_id: str) -> None:
    assert to_event(parse_place_order(_raw(_body(user_id=user_id))), None, NOW).user_id == user_id


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sku", ""),
        ("sku", "x" * 65),
        ("sku", "a\x00b"),
        ("sku", "a\x7f"),
        ("sku", "\ud800"),
        ("sku", 12),
        ("name", "   "),
        ("name", "x" * 201),
        ("name", "tab\there"),
        ("name", "\x85"),
        ("name", "\udfff"),
    ],
)
def test_bad_skus_and_names_are_refused(field: str, value: Any) -> None:
    assert _locs(_refusal(_raw(_body(item={field: value})))) == {("items", 0, field)}


def test_names_are_trimmed() -> None:
    event = to_event(parse_place_order(_raw(_body(item={"name": "  Green tea "}))), None, NOW)
    assert event.items[0].name == "Green tea"


@pytest.mark.parametrize("count", [0, 101])
def test_item_count_is_bounded(count: int) -> None:
    body = _body()
    body["items"] = body["items"] * count
    assert ("items",) in _locs(_refusal(_raw(body)))


def test_a_hundred_items_are_fine() -> None:
    body = _body()
    body["items"] = body["items"] * 100
    assert len(to_event(parse_place_order(_raw(body)), None, NOW).items) == 100


def test_unknown_fields_are_refused() -> None:
    assert _locs(_refusal(_raw(_body(discount=5)))) == {("discount",)}
    assert _locs(_refusal(_raw(_body(item={"colour": "red"})))) == {("items", 0, "colour")}


@pytest.mark.parametrize("currency", ["USD", "gbp", "", 826, None])
def test_only_gbp_is_supported(currency: Any) -> None:
    refusal = _refusal(_raw(_body(currency=currency)))
    assert _locs(refusal) == {("currency",)}
    if isinstance(currency, str):
        assert "only GBP is supported" in str(refusal)


def test_currency_gbp_may_be_given() -> None:
    assert parse_place_order(_raw(_body(currency="GBP"))).currency == "GBP"


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"nope", b'{"a": NaN}', b"[Infinity]", b"\xff\xfe\x00", b"[" * 100_000]
)
def test_malformed_json_is_its_own_error(raw: bytes) -> None:
    with pytest.raises(MalformedJson, match="malformed JSON"):
        parse_place_order(raw)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_any_json_is_either_an_order_or_a_refusal(value: Any) -> None:
    try:
        to_event(parse_place_order(json.dumps(value).encode()), None, NOW)
    except InvalidOrder as refusal:
        json.dumps([issue.__dict__ for issue in refusal.issues])  # always serialisable


@given(st.binary(max_size=200))
def test_any_bytes_are_an_order_or_a_refusal(raw: bytes) -> None:
    with contextlib.suppress(InvalidOrder, MalformedJson):
        parse_place_order(raw)


@given(
    st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    st.from_regex(r"[\x21-\x7e]{1,128}", fullmatch=True),
)
def test_same_user_and_key_give_the_same_order_id(user_id: str, key: str) -> None:
    assert order_id_for(user_id, key) == order_id_for(user_id, key)
    assert order_id_for(user_id, key) != order_id_for(user_id + "x", key)
    assert order_id_for(user_id, key) != order_id_for(user_id, key + "x")


def test_order_id_is_stable_across_releases() -> None:
    # A changed namespace would make retries after an upgrade create new orders.
    assert order_id_for("alice", "key-1") == UUID("fc607923-5392-50a7-a952-5158b800cdcb")


def test_without_a_key_every_order_is_new() -> None:
    assert order_id_for("alice", None) != order_id_for("alice", None)


@pytest.mark.parametrize("key", ["", " ", "a b", "x" * 129, "é", "tab\t", "\x7f"])
def test_bad_idempotency_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidOrder, match="Idempotency-Key"):
        order_id_for("alice", key)


def test_event_fields() -> None:
    request = parse_place_order(_raw(_body()))
    local_now = NOW.astimezone(timezone(timedelta(hours=5)))
    first, second = to_event(request, "k", local_now), to_event(request, "k", local_now)
    assert first.placed_at == NOW
    assert first.placed_at.utcoffset() == timedelta(0)
    assert first.event_id != second.event_id
    assert first.order_id == second.order_id
    assert {i.unit_price.currency for i in first.items} == {"GBP"}
    assert first.channel == "api"
    assert first.user_id == "alice"


def test_receipt_shape() -> None:
    receipt = accepted(to_event(parse_place_order(_raw(_body())), None, NOW), "v1:0:7")
    body = json.loads(receipt.model_dump_json())
    assert body["placed_at"] == "2026-03-04T05:06:07Z"
    assert body["items"] == [
        {"sku": "SKU-1", "name": "Tea", "unit_price": "4.99", "quantity": 1, "price_group": "cheap"}
    ]
    assert body["consistency_token"] == "v1:0:7"


def test_request_model_validates_python_values_too() -> None:
    request = PlaceOrderRequest.model_validate(_body(item={"unit_price": Decimal("5.00")}))
    assert request.items[0].unit_price == Decimal("5")
