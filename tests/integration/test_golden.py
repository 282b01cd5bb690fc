"""The golden logs (shared/schemas/golden): real OrderPlaced records of each version as the
command service wrote them (v1 in 2026-12, before v2 existed; v2 by the release that added it),
with their headers. Every later version of the code must read each one and fold each log to the
view recorded beside it: a change that breaks reading old events fails here before it ships."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from devtools.golden import fold_golden, log_path, view_path
from query_service.view.decoding import decode_placed
from shared.events import READABLE_VERSIONS, decode


def _records(version: int) -> list[dict[str, object]]:
    return [json.loads(line) for line in log_path(version).read_text().splitlines()]


@pytest.mark.parametrize("version", READABLE_VERSIONS)
def test_each_golden_log_folds_to_its_recorded_view(version: int, tmp_path: Path) -> None:
    expected = json.loads(view_path(version).read_text())
    assert fold_golden(log_path(version), tmp_path) == expected


@pytest.mark.parametrize("version", READABLE_VERSIONS)
def test_every_golden_record_decodes_alike_by_the_model_and_the_fast_decoder(
    version: int,
) -> None:
    records = _records(version)
    assert len(records) >= 8
    for offset, record in enumerate(records):
        value = base64.b64decode(str(record["value"]))
        event = decode(value)
        placed = decode_placed(value, offset)
        assert placed.value is value  # read by the fast path, kept as written
        assert (placed.user_id, placed.order_id) == (event.user_id, str(event.order_id))
        assert placed.items == tuple(
            (i.sku, i.name, i.unit_price.amount_minor, i.quantity) for i in event.items
        )
        assert record["headers"] == {"event_type": "OrderPlaced", "schema_version": str(version)}
        assert json.loads(value)["schema_version"] == version
        assert record["key"] == event.user_id


def test_the_logs_of_each_version_hold_the_same_lines() -> None:
    """The same orders were sent to each version's writer: the views' lines and summaries agree
    (order ids differ where no Idempotency-Key fixed them)."""
    views = [json.loads(view_path(v).read_text()) for v in READABLE_VERSIONS]
    for view in views[1:]:
        assert {u: v["groups"] for u, v in view.items()} == {
            u: v["groups"] for u, v in views[0].items()
        }
