"""OrderPlaced on the wire. Value: the event as JSON. Key: the user id. Headers: `event_type`
and `schema_version`. Any readable version decodes; what comes out is the newest shape."""

from __future__ import annotations

from typing import Any, Final

import orjson
from pydantic import BaseModel, ValidationError

from shared.events.fields import EVENT_TYPE
from shared.events.upcasting import AnyOrderPlaced, upcast
from shared.events.v1 import OrderPlaced as OrderPlacedV1
from shared.events.v2 import OrderPlaced
from shared.exceptions import EventDecodeError

# The version every reader folds; the models of the versions it can still read.
LATEST_VERSION: Final = 2
MODELS: Final[dict[int, type[AnyOrderPlaced]]] = {1: OrderPlacedV1, 2: OrderPlaced}
READABLE_VERSIONS: Final = tuple(MODELS)
# The kind of EventDecodeError of an event newer than this code: never a dead letter.
FUTURE_VERSION: Final = "future_version"


def encode(event: AnyOrderPlaced) -> bytes:
    return event.model_dump_json().encode()


def headers(version: int = LATEST_VERSION) -> list[tuple[str, bytes]]:
    return [("event_type", EVENT_TYPE.encode()), ("schema_version", str(version).encode())]


def decode(raw: bytes | None) -> OrderPlaced:
    """Bytes from the topic to an event in the newest shape; raises EventDecodeError naming
    what is wrong."""
    return upcast(validate_written(load_json(raw)))


def load_json(raw: bytes | None) -> Any:
    """A record's value as JSON; raises EventDecodeError("invalid_json") when it is not."""
    if raw is None:
        raise EventDecodeError("invalid_json", "the record has no value")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventDecodeError("invalid_json", str(exc)) from exc


def validate(obj: Any) -> OrderPlaced:
    """orjson's output to an event in the newest shape; raises EventDecodeError."""
    return upcast(validate_written(obj))


def validate_written(obj: Any) -> AnyOrderPlaced:
    """orjson's output to an event of the version it was written in; raises EventDecodeError
    naming what is wrong."""
    if not isinstance(obj, dict):
        raise EventDecodeError("schema", "the value is not a JSON object")
    version = obj.get("schema_version")
    if type(version) is int and version > LATEST_VERSION:
        # A producer already upgraded: the event is valid, this reader is too old to fold it.
        raise EventDecodeError(
            FUTURE_VERSION,
            f"schema_version {version} is newer than this service understands "
            f"({LATEST_VERSION}): upgrade the query service",
        )
    model = MODELS.get(version) if type(version) is int else None
    if model is None:
        raise EventDecodeError("unknown_version", f"schema_version {version!r} is not supported")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise EventDecodeError("schema", _summary(exc)) from exc


def _summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
    )


def json_schema(version: int = LATEST_VERSION) -> dict[str, Any]:
    model: type[BaseModel] = MODELS[version]
    return model.model_json_schema(mode="serialization")


# The dialect the topic's schema declares: registries detect JSON Schema by it (Apicurio's
# compatibility checker reads draft-07); the versions' `$defs` are plain JSON pointers in it.
TOPIC_SCHEMA_DIALECT: Final = "http://json-schema.org/draft-07/schema#"


def topic_schema(up_to: int = LATEST_VERSION) -> dict[str, Any]:
    """What a consumer of the topic must read once writers have written versions 1..`up_to`:
    the log keeps every event, so one of them, told apart by `schema_version`. Each version
    keeps its own schema under `$defs` (its definitions prefixed `v<n>.`), so that registered
    under the topic's subject the schema only ever gains a `oneOf` branch: a registry checking
    backward compatibility accepts each switch and refuses a change to a shipped version."""
    definitions: dict[str, Any] = {}
    for version in range(1, up_to + 1):
        schema = json_schema(version)
        inner = schema.pop("$defs", {})
        text = orjson.dumps({"root": schema, "defs": inner}).decode()
        moved = orjson.loads(text.replace('"#/$defs/', f'"#/$defs/v{version}.'))
        definitions.update({f"v{version}.{name}": d for name, d in moved["defs"].items()})
        definitions[f"OrderPlacedV{version}"] = moved["root"]
    return {
        "$schema": TOPIC_SCHEMA_DIALECT,
        "$defs": definitions,
        "oneOf": [{"$ref": f"#/$defs/OrderPlacedV{v}"} for v in range(1, up_to + 1)],
    }
