"""The golden log (shared/schemas/golden): real OrderPlaced v1 records as the command service of
2026-12 wrote them, with their headers. Every later version of the code must read each one and
fold them all to the view recorded beside them: a change that breaks reading old events fails
here before it ships."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from devtools.golden import LOG, VIEW, fold_golden
from query_service.view.decoding import decode_placed
from shared.events import decode


def _records() -> list[dict[str, object]]:
    return [json.loads(line) for line in LOG.read_text().splitlines()]


def test_the_golden_log_folds_to_its_recorded_view(tmp_path: Path) -> None:
    assert fold_golden(LOG, tmp_path) == json.loads(VIEW.read_text())


def test_every_golden_record_decodes_alike_by_the_model_and_the_fast_decoder() -> None:
    records = _records()
    assert len(records) >= 8
    for offset, record in enumerate(records):
        value = base64.b64decode(str(record["value"]))
        event = decode(value)
        placed = decode_placed(value, offset)
        assert (placed[0], placed[1]) == (event.user_id, str(event.order_id))
        assert record["headers"] == {"event_type": "OrderPlaced", "schema_version": "1"}
        assert record["key"] == event.user_id
