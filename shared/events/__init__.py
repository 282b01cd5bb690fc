"""The OrderPlaced event: the one fact the system records, in every version ever written.

fields.py: what all versions share; v1.py, v2.py: each version's model, frozen once released;
upcasting.py: each older version to the newest; codec.py: the wire format and decoding.
"""

from shared.events.codec import (
    FUTURE_VERSION,
    LATEST_VERSION,
    READABLE_VERSIONS,
    decode,
    encode,
    headers,
    json_schema,
    load_json,
    topic_schema,
    validate,
    validate_written,
)
from shared.events.fields import (
    CURRENCY,
    EVENT_TYPE,
    MAX_ITEMS,
    MAX_NAME_LENGTH,
    MAX_QUANTITY,
    MAX_SKU_LENGTH,
    MAX_USER_ID_LENGTH,
    USER_ID_PATTERN,
    Currency,
    ItemName,
    Quantity,
    Sku,
    UserId,
)
from shared.events.upcasting import V1_CHANNEL, AnyOrderPlaced, upcast, written_as
from shared.events.v1 import LineItem as LineItemV1
from shared.events.v1 import OrderPlaced as OrderPlacedV1
from shared.events.v2 import CHANNELS, Channel, LineItem, Money, OrderPlaced

__all__ = [
    "CHANNELS",
    "CURRENCY",
    "EVENT_TYPE",
    "FUTURE_VERSION",
    "LATEST_VERSION",
    "MAX_ITEMS",
    "MAX_NAME_LENGTH",
    "MAX_QUANTITY",
    "MAX_SKU_LENGTH",
    "MAX_USER_ID_LENGTH",
    "READABLE_VERSIONS",
    "USER_ID_PATTERN",
    "V1_CHANNEL",
    "AnyOrderPlaced",
    "Channel",
    "Currency",
    "ItemName",
    "LineItem",
    "LineItemV1",
    "Money",
    "OrderPlaced",
    "OrderPlacedV1",
    "Quantity",
    "Sku",
    "UserId",
    "decode",
    "encode",
    "headers",
    "json_schema",
    "load_json",
    "topic_schema",
    "upcast",
    "validate",
    "validate_written",
    "written_as",
]
