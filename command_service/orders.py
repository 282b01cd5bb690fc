"""Placing an order: the request as a client sends it, and the OrderPlaced event it becomes.

Pure: no web framework and no Kafka here. Amounts are parsed from JSON as exact decimals.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, NoReturn

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)

from command_service.exceptions import InvalidOrder, Issue, MalformedJson
from shared.events import (
    CURRENCY,
    MAX_ITEMS,
    Channel,
    ItemName,
    LineItem,
    Money,
    OrderPlaced,
    Quantity,
    Sku,
    UserId,
)
from shared.exceptions import InvalidAmount
from shared.money import (
    MAX_UNIT_PRICE_MINOR,
    PENCE_PER_POUND,
    PriceGroup,
    minor_to_pounds,
    pounds_to_minor,
)

# Fixed forever: order ids derived from idempotency keys must not change across releases.
ORDER_ID_NAMESPACE: Final = uuid.UUID("6f0c7f0e-3b8a-5d36-9a53-2f4b1c8e9d71")
IDEMPOTENCY_KEY_PATTERN: Final = r"^[\x21-\x7e]{1,128}$"
MAX_UNIT_PRICE: Final = Decimal(MAX_UNIT_PRICE_MINOR) / PENCE_PER_POUND

_POUNDS_PATTERN: Final = rf"^[0-9]{{1,{len(str(int(MAX_UNIT_PRICE)))}}}(\.[0-9]{{1,2}})?$"
_PLAIN_DECIMAL = re.compile(r"\s*[+-]?[0-9]+(\.[0-9]+)?\s*")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _as_decimal(value: Any) -> Any:
    # Strings must be plain decimals: Python's Decimal would also take "1_000", "NaN" or
    # non-ASCII digits.
    if isinstance(value, str) and _PLAIN_DECIMAL.fullmatch(value) is None:
        raise ValueError('must be an amount in pounds such as 12.34 or "12.34"')
    if isinstance(value, Decimal) and value.is_finite() and value > MAX_UNIT_PRICE:
        raise ValueError(f"must be at most {minor_to_pounds(MAX_UNIT_PRICE_MINOR)}")
    return value


def _whole_pence(value: Decimal) -> Decimal:
    if value > MAX_UNIT_PRICE:
        raise ValueError(f"must be at most {minor_to_pounds(MAX_UNIT_PRICE_MINOR)}")
    try:
        return Decimal(pounds_to_minor(value)) / PENCE_PER_POUND
    except InvalidAmount:
        raise ValueError("must have at most 2 decimal places") from None


def _encodable(value: str) -> str:
    if _SURROGATE.search(value):
        raise ValueError("must not contain unpaired surrogate code points")
    return value


def _supported_currency(value: str) -> str:
    if value != CURRENCY:
        raise ValueError(f"only {CURRENCY} is supported")
    return value


Pounds = Annotated[
    Decimal,
    BeforeValidator(_as_decimal),
    Field(gt=0, allow_inf_nan=False),
    AfterValidator(_whole_pence),
    WithJsonSchema(
        {
            "description": "Unit price in pounds, more than 0, at most 2 decimal places.",
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": int(MAX_UNIT_PRICE)},
                {"type": "string", "pattern": _POUNDS_PATTERN},
            ],
            "examples": ["12.34"],
        }
    ),
]
Currency = Annotated[
    str,
    AfterValidator(_supported_currency),
    WithJsonSchema({"type": "string", "enum": [CURRENCY], "default": CURRENCY}),
]


class OrderLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: Annotated[Sku, AfterValidator(_encodable)]
    name: Annotated[ItemName, AfterValidator(_encodable)]
    unit_price: Pounds
    quantity: Quantity


class PlaceOrderRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # With authentication the order is for the token's user; naming another one is refused.
    user_id: UserId | None = None
    items: Annotated[list[OrderLine], Field(min_length=1, max_length=MAX_ITEMS)]
    currency: Currency = CURRENCY
    # Where the order was placed: the shop's web page says `web`, its app `app`; a client that
    # says nothing is taken for a direct API client.
    channel: Channel = "api"


class AcceptedLine(BaseModel):
    sku: str
    name: str
    unit_price: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]{2}$", examples=["12.34"])]
    quantity: int
    price_group: PriceGroup


class OrderAccepted(BaseModel):
    """What the client gets back: the order as recorded, and a token to read its own write."""

    order_id: uuid.UUID
    user_id: str
    placed_at: datetime
    currency: str
    channel: Channel
    items: list[AcceptedLine]
    consistency_token: str


def parse_place_order(body: bytes) -> PlaceOrderRequest:
    """JSON bytes to a valid request; raises MalformedJson or InvalidOrder."""
    try:
        obj = json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedJson(str(exc)) from exc
    try:
        return PlaceOrderRequest.model_validate(obj)
    except ValidationError as exc:
        raise InvalidOrder(issues(exc)) from exc


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def issues(exc: ValidationError) -> list[Issue]:
    """Pydantic errors without inputs or contexts, which may hold Decimals or unencodable text."""
    return [
        Issue(tuple(_printable(part) for part in err["loc"]), err["msg"], err["type"])
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _printable(part: str | int) -> str | int:
    return part.encode("utf-8", "backslashreplace").decode() if isinstance(part, str) else part


def order_id_for(user_id: str, idempotency_key: str | None) -> uuid.UUID:
    """The same user and key always give the same order id; no key, a fresh one."""
    if idempotency_key is None:
        return uuid.uuid4()
    if re.fullmatch(IDEMPOTENCY_KEY_PATTERN, idempotency_key) is None:
        raise InvalidOrder(
            [
                Issue(
                    ("header", "Idempotency-Key"),
                    "Idempotency-Key must be 1 to 128 visible ASCII characters (0x21-0x7E)",
                    "idempotency_key",
                )
            ]
        )
    return uuid.uuid5(ORDER_ID_NAMESPACE, f"{user_id}\n{idempotency_key}")


def to_event(
    request: PlaceOrderRequest,
    idempotency_key: str | None,
    now: datetime,
    user_id: str | None = None,
) -> OrderPlaced:
    """The event for `request`, placed by `user_id` (default: the user the body names)."""
    user = user_id if user_id is not None else request.user_id
    if user is None:
        raise InvalidOrder([Issue(("body", "user_id"), "Field required", "missing")])
    return OrderPlaced(
        event_id=uuid.uuid4(),
        order_id=order_id_for(user, idempotency_key),
        user_id=user,
        placed_at=now.astimezone(UTC),
        channel=request.channel,
        items=tuple(
            LineItem(
                sku=line.sku,
                name=line.name,
                unit_price=Money(
                    amount_minor=pounds_to_minor(line.unit_price), currency=request.currency
                ),
                quantity=line.quantity,
            )
            for line in request.items
        ),
    )


def accepted(event: OrderPlaced, consistency_token: str) -> OrderAccepted:
    return OrderAccepted(
        order_id=event.order_id,
        user_id=event.user_id,
        placed_at=event.placed_at,
        currency=CURRENCY,
        channel=event.channel,
        items=[
            AcceptedLine(
                sku=item.sku,
                name=item.name,
                unit_price=minor_to_pounds(item.unit_price.amount_minor),
                quantity=item.quantity,
                price_group=item.price_group,
            )
            for item in event.items
        ],
        consistency_token=consistency_token,
    )
