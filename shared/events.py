"""The OrderPlaced event: the one fact the system records, and its JSON wire format.

Value: the event as JSON. Key: the user id. Headers: `event_type` and `schema_version`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal
from uuid import UUID

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from shared.exceptions import EventDecodeError
from shared.money import MAX_UNIT_PRICE_MINOR, PriceGroup

EVENT_TYPE: Final = "OrderPlaced"
SCHEMA_VERSION: Final = 1
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


class LineItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: Sku
    name: ItemName
    unit_price_minor: Annotated[int, Field(gt=0, le=MAX_UNIT_PRICE_MINOR, strict=True)]
    quantity: Quantity

    @property
    def price_group(self) -> PriceGroup:
        return PriceGroup.of(self.unit_price_minor)


class OrderPlaced(BaseModel):
    """A user placed an order. Immutable; `order_id` identifies the order across retries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: Literal["OrderPlaced"] = EVENT_TYPE
    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID
    order_id: UUID
    user_id: UserId
    placed_at: AwareDatetime
    currency: Currency = CURRENCY
    items: Annotated[tuple[LineItem, ...], Field(min_length=1, max_length=MAX_ITEMS)]


def encode(event: OrderPlaced) -> bytes:
    return event.model_dump_json().encode()


def headers() -> list[tuple[str, bytes]]:
    return [("event_type", EVENT_TYPE.encode()), ("schema_version", str(SCHEMA_VERSION).encode())]


def decode(raw: bytes | None) -> OrderPlaced:
    """Bytes from the topic to an event; raises EventDecodeError naming what is wrong."""
    return validate(load_json(raw))


def load_json(raw: bytes | None) -> Any:
    """A record's value as JSON; raises EventDecodeError("invalid_json") when it is not."""
    if raw is None:
        raise EventDecodeError("invalid_json", "the record has no value")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventDecodeError("invalid_json", str(exc)) from exc


# The kind of EventDecodeError of an event newer than this code: never a dead letter.
FUTURE_VERSION: Final = "future_version"


def validate(obj: Any) -> OrderPlaced:
    """orjson's output to an event; raises EventDecodeError naming what is wrong."""
    if not isinstance(obj, dict):
        raise EventDecodeError("schema", "the value is not a JSON object")
    version = obj.get("schema_version")
    if type(version) is int and version > SCHEMA_VERSION:
        # A producer already upgraded: the event is valid, this reader is too old to fold it.
        raise EventDecodeError(
            FUTURE_VERSION,
            f"schema_version {version} is newer than this service understands "
            f"({SCHEMA_VERSION}): upgrade the query service",
        )
    if version != SCHEMA_VERSION:
        raise EventDecodeError("unknown_version", f"schema_version {version!r} is not supported")
    try:
        return OrderPlaced.model_validate(obj)
    except ValidationError as exc:
        raise EventDecodeError("schema", _summary(exc)) from exc


def _summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
    )


def json_schema() -> dict[str, Any]:
    return OrderPlaced.model_json_schema(mode="serialization")
