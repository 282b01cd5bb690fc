"""`python -m shared.schema` writes the committed JSON Schema of the OrderPlaced event.

Consumers in other languages read that file; a unit test fails when it drifts from the model.
"""

from __future__ import annotations

import json
from pathlib import Path

from shared.events import SCHEMA_VERSION, json_schema

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / f"order_placed.v{SCHEMA_VERSION}.json"
REGENERATE = "python -m shared.schema"


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    SCHEMA_PATH.parent.mkdir(exist_ok=True)
    SCHEMA_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
