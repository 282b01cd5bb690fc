"""`python -m shared.schema` writes the committed JSON Schema of each readable OrderPlaced version,
and the topic's (any of them, by `schema_version`); `--check` fails, naming the files, if any
differs from its model (`make lint` runs it).

Consumers in other languages read those files; a registry, where one runs, gets the topic's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from shared.events import LATEST_VERSION, READABLE_VERSIONS, json_schema, topic_schema

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
REGENERATE = "python -m shared.schema"


TOPIC_SCHEMA_PATH = SCHEMAS_DIR / "order_placed.topic.json"


def schema_path(version: int) -> Path:
    return SCHEMAS_DIR / f"order_placed.v{version}.json"


def as_text(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render(version: int) -> str:
    return as_text(json_schema(version))


def rendered() -> dict[Path, str]:
    """Every committed schema file and what its model makes of it now."""
    found = {schema_path(version): render(version) for version in READABLE_VERSIONS}
    found[TOPIC_SCHEMA_PATH] = as_text(topic_schema(LATEST_VERSION))
    return found


def stale() -> list[Path]:
    """The committed schemas that differ from their models (or are missing)."""
    found = []
    for path, text in rendered().items():
        committed = path.read_text(encoding="utf-8") if path.exists() else ""
        if committed != text:
            found.append(path)
    return found


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        found = stale()
        for path in found:
            print(f"{path} differs from its model: regenerate with `{REGENERATE}` and commit it")
        return 1 if found else 0
    SCHEMAS_DIR.mkdir(exist_ok=True)
    for path, text in rendered().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
