"""The whole flow over real processes: POST an order to the command service, read it back from the
query service, grouped by price, using the consistency token for read-your-writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import as_named_user, running_system


@pytest.fixture
def system(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with running_system(kafka_bootstrap, tmp_path) as running:
        yield running.command.url, running.query.url


def test_an_order_posted_is_read_back_grouped_by_price(system: tuple[str, str]) -> None:
    command_url, query_url = system
    order = {
        "user_id": "alice",
        "items": [
            {"sku": "PEN", "name": "Pen", "unit_price": "4.99", "quantity": 3},
            {"sku": "MUG", "name": "Mug", "unit_price": 50, "quantity": 1},
            {"sku": "LAMP", "name": "Lamp", "unit_price": "50.01", "quantity": 2},
        ],
    }
    placed = httpx.post(f"{command_url}/orders", json=order, timeout=10, auth=as_named_user())
    assert placed.status_code == 201, placed.text
    token = placed.json()["consistency_token"]
    assert placed.headers["X-Consistency-Token"] == token

    view = httpx.get(
        f"{query_url}/users/alice/items",
        params={"consistency_token": token, "wait_ms": 10_000},
        timeout=15,
        auth=as_named_user(),
    )
    assert view.status_code == 200, view.text
    groups = view.json()["groups"]
    orders = httpx.get(f"{query_url}/users/alice/orders", timeout=15, auth=as_named_user()).json()[
        "orders"
    ]
    assert orders[0]["order_id"] == placed.json()["order_id"]

    def only_line(group: str) -> dict[str, object]:
        lines = groups[group]["lines"]
        assert len(lines) == 1, groups
        line: dict[str, object] = lines[0]
        assert line["order_count"] == 1
        return line

    assert only_line("cheap")["sku"] == "PEN"
    assert groups["cheap"] | {"lines": None} == {
        "lines": None,
        "item_count": 3,
        "total": "14.97",
        "line_count": 1,
        "next_cursor": None,
    }
    assert only_line("affordable")["unit_price"] == "50.00"
    assert groups["affordable"]["total"] == "50.00"
    assert only_line("expensive")["quantity"] == 2
    assert groups["expensive"]["total"] == "100.02"
