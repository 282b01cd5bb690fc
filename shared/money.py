"""Money held exactly as integer pence, and the price groups that bucket a unit price."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum

from shared.exceptions import InvalidAmount

PENCE_PER_POUND = 100
MAX_UNIT_PRICE_MINOR = 1_000_000 * PENCE_PER_POUND
AFFORDABLE_FROM_MINOR = 5 * PENCE_PER_POUND
AFFORDABLE_UP_TO_MINOR = 50 * PENCE_PER_POUND
_PENNY = Decimal("0.01")


class PriceGroup(StrEnum):
    CHEAP = "cheap"
    AFFORDABLE = "affordable"
    EXPENSIVE = "expensive"

    @classmethod
    def of(cls, unit_price_minor: int) -> PriceGroup:
        """Under £5.00 is cheap, £5.00 to £50.00 inclusive is affordable, over £50.00 expensive."""
        if unit_price_minor < AFFORDABLE_FROM_MINOR:
            return cls.CHEAP
        if unit_price_minor <= AFFORDABLE_UP_TO_MINOR:
            return cls.AFFORDABLE
        return cls.EXPENSIVE


def pounds_to_minor(amount: Decimal | int | str) -> int:
    """Exact pounds to pence; refuses non-finite values and more than 2 decimal places."""
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount).strip())
    except InvalidOperation as exc:
        raise InvalidAmount(f"{amount!r} is not a number") from exc
    if not value.is_finite():
        raise InvalidAmount(f"{amount!r} is not a finite amount")
    # quantize and compare are exact; multiplying first would round past 28 digits or underflow.
    try:
        pounds = value.quantize(_PENNY)
    except InvalidOperation as exc:
        raise InvalidAmount(f"{amount!r} is out of range") from exc
    if pounds != value:
        raise InvalidAmount(f"{amount!r} has more than 2 decimal places")
    return int(pounds.scaleb(2))


def minor_to_pounds(minor: int) -> str:
    """Pence as a pounds string with exactly 2 decimal places: 5000 -> '50.00'."""
    sign = "-" if minor < 0 else ""
    whole, pence = divmod(abs(minor), PENCE_PER_POUND)
    return f"{sign}{whole}.{pence:02d}"
