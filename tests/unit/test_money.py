"""Money as exact pence and the price groups, without any infrastructure."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.exceptions import InvalidAmount
from shared.money import MAX_UNIT_PRICE_MINOR, PriceGroup, minor_to_pounds, pounds_to_minor

pence = st.integers(min_value=1, max_value=MAX_UNIT_PRICE_MINOR)


@pytest.mark.parametrize(
    ("pounds", "group"),
    [
        ("0.01", PriceGroup.CHEAP),
        ("4.99", PriceGroup.CHEAP),
        ("5.00", PriceGroup.AFFORDABLE),
        ("5", PriceGroup.AFFORDABLE),
        ("50.00", PriceGroup.AFFORDABLE),
        ("50.01", PriceGroup.EXPENSIVE),
        ("1000000.00", PriceGroup.EXPENSIVE),
    ],
)
def test_price_group_boundaries(pounds: str, group: PriceGroup) -> None:
    assert PriceGroup.of(pounds_to_minor(pounds)) is group


@given(pence)
def test_price_groups_partition_the_range_at_5_and_50_pounds(minor: int) -> None:
    group = PriceGroup.of(minor)
    if minor < 500:
        assert group is PriceGroup.CHEAP
    elif minor <= 5000:
        assert group is PriceGroup.AFFORDABLE
    else:
        assert group is PriceGroup.EXPENSIVE


@given(pence)
def test_pounds_string_round_trips_exactly(minor: int) -> None:
    text = minor_to_pounds(minor)
    assert pounds_to_minor(text) == minor
    assert pounds_to_minor(Decimal(text)) == minor
    assert Decimal(text) * 100 == minor


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_minor_to_pounds_always_has_two_decimals(minor: int) -> None:
    whole, _, fraction = minor_to_pounds(minor).lstrip("-").partition(".")
    assert len(fraction) == 2
    assert whole.isdigit()


@given(st.integers(min_value=1, max_value=10**9).filter(lambda n: n % 10 != 0))
def test_three_decimal_places_are_refused(thousandths: int) -> None:
    with pytest.raises(InvalidAmount, match="decimal places"):
        pounds_to_minor(Decimal(thousandths) / 1000)


@pytest.mark.parametrize(
    "amount",
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "sNaN",
        "",
        "abc",
        "1.001",
        "4.999999999999999999",
        "1.00000000000000000000000000001",  # more digits than Decimal's default precision
        "1e-999999999",  # would underflow to 0 if multiplied
        "1e999999999",  # would overflow if multiplied
    ],
)
def test_non_amounts_are_refused_with_invalid_amount(amount: str) -> None:
    with pytest.raises(InvalidAmount):
        pounds_to_minor(amount)


def test_trailing_zeros_are_not_extra_decimal_places() -> None:
    assert pounds_to_minor("4.990") == 499
    assert pounds_to_minor(" 12 ") == 1200
    assert pounds_to_minor(7) == 700
