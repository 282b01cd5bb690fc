"""`python -m shared.schema` writes the committed JSON Schema of each readable OrderPlaced version
(`--check`: fails, naming the files, if any differs from its model; `make lint` runs it).

Consumers in other languages read those files; a registry, where one runs, gets the same text.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from shared.events import READABLE_VERSIONS, json_schema

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
REGENERATE = "python -m shared.schema"


def schema_path(version: int) -> Path:
    return SCHEMAS_DIR / f"order_placed.v{version}.json"


def render(version: int) -> str:
    return json.dumps(json_schema(version), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def stale() -> list[Path]:
    """The committed schemas that differ from their models (or are missing)."""
    found = []
    for version in READABLE_VERSIONS:
        path = schema_path(version)
        committed = path.read_text(encoding="utf-8") if path.exists() else ""
        if committed != render(version):
            found.append(path)
    return found


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        found = stale()
        for path in found:
            print(f"{path} differs from its model: regenerate with `{REGENERATE}` and commit it")
        return 1 if found else 0
    SCHEMAS_DIR.mkdir(exist_ok=True)
    for version in READABLE_VERSIONS:
        path = schema_path(version)
        path.write_text(render(version), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
