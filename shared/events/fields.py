"""What every version of OrderPlaced shares: its type, its limits and the fields' constraints."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field, StringConstraints

from shared.money import MAX_UNIT_PRICE_MINOR

EVENT_TYPE: Final = "OrderPlaced"
# A Literal type cannot name a constant: mypy checks that the two spellings agree.
Currency = Literal["GBP"]
CURRENCY: Final[Currency] = "GBP"
MAX_ITEMS: Final = 100
MAX_QUANTITY: Final = 1000
MAX_SKU_LENGTH: Final = 64
MAX_NAME_LENGTH: Final = 200
MAX_USER_ID_LENGTH: Final = 64
USER_ID_PATTERN: Final = rf"^[A-Za-z0-9._-]{{1,{MAX_USER_ID_LENGTH}}}$"

_NO_CONTROL_CHARS = r"^[^\x00-\x1f\x7f-\x9f]*$"
UserId = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]
Sku = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_SKU_LENGTH, pattern=_NO_CONTROL_CHARS)
]
ItemName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=_NO_CONTROL_CHARS,
    ),
]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True)]
AmountMinor = Annotated[int, Field(gt=0, le=MAX_UNIT_PRICE_MINOR, strict=True)]
