"""`python -m devtools.golden VERSION`: record the golden log of OrderPlaced events of VERSION.

Today's command service, as a real process on a broker of its own and told to write VERSION
(COMMAND_EVENT_VERSION), is sent a fixed set of orders (every price group and both of its edges,
pence given as strings and numbers, names in several scripts, repeated skus and prices, an
idempotent retry, each channel); the records it appended are read back from the topic with their
headers and written, one JSON object per line, to shared/schemas/golden/order_placed.vN.jsonl.
The view they fold to is recorded beside them (order_placed.vN.view.json) by the query side's
own decoder and fold.

Kept forever: a later version of the code must still decode, upcast and fold every line to
that view (tests/integration/test_golden.py). Run it only to add a new version's log, never to
rewrite one that has shipped.
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer

from devtools.environment import service_env, unique_topic
from devtools.processes import ServiceProcess
from kafka_local.broker import REPO, LocalBroker, free_port

GOLDEN = REPO / "shared" / "schemas" / "golden"
CHANNELS = ("web", "app", "api")


def log_path(version: int) -> Path:
    return GOLDEN / f"order_placed.v{version}.jsonl"


def view_path(version: int) -> Path:
    return GOLDEN / f"order_placed.v{version}.view.json"


ORDERS: list[tuple[str, str | None, list[dict[str, Any]]]] = [
    ("alice", "golden-1", [{"sku": "PEN", "name": "Pen", "unit_price": "4.99", "quantity": 3}]),
    (
        "alice",
        "golden-2",
        [
            {"sku": "MUG", "name": "Mug", "unit_price": 5, "quantity": 1},
            {"sku": "LAMP", "name": "Lamp", "unit_price": "50.00", "quantity": 2},
            {"sku": "SOFA", "name": "Sofa", "unit_price": "50.01", "quantity": 1},
        ],
    ),
    ("alice", "golden-2", [{"sku": "MUG", "name": "Mug", "unit_price": 5, "quantity": 1}]),
    ("bob", None, [{"sku": "PEN", "name": "Pen", "unit_price": 0.01, "quantity": 99}]),
    (
        "bob",
        None,
        [
            {"sku": "TEA-ÉCRU", "name": "Thé écru \u2013 茶", "unit_price": "4.99", "quantity": 1},
            {"sku": "PEN", "name": "Pen", "unit_price": "0.01", "quantity": 1},
        ],
    ),
    ("carol", None, [{"sku": "RING", "name": "Ring 💍", "unit_price": "1999.99", "quantity": 1}]),
    ("carol", None, [{"sku": "RING", "name": "Ring 💍", "unit_price": "1500", "quantity": 2}]),
    ("dave.o-neil_2", None, [{"sku": "X", "name": "X", "unit_price": "49.99", "quantity": 1000}]),
]


def record(workdir: Path, version: int) -> list[dict[str, Any]]:
    broker = LocalBroker(workdir / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    topic = unique_topic("golden")
    env = {
        **service_env(broker.bootstrap_servers, None, topic),
        "AUTH_DISABLED": "true",
        "COMMAND_EVENT_VERSION": str(version),
    }
    command = ServiceProcess("command_service", env, workdir / "command.log")
    try:
        command.start("/health/ready")
        for n, (user, key, items) in enumerate(ORDERS):
            headers = {"Idempotency-Key": key} if key else {}
            body: dict[str, Any] = {"user_id": user, "items": items}
            if version >= 2:  # the first release's request had no channel
                body["channel"] = CHANNELS[n % len(CHANNELS)]
            placed = httpx.post(
                f"{command.url}/orders",
                json=body,
                headers=headers,
                timeout=10,
            )
            if placed.status_code != 201:
                raise SystemExit(f"{user} {items}: {placed.status_code} {placed.text}")
        return _read(broker.bootstrap_servers, topic)
    finally:
        command.stop()
        broker.stop()


def _read(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "golden",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and len(found) < len(ORDERS):
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            found.append(
                {
                    "key": (message.key() or b"").decode(),
                    "headers": _headers(message),
                    "value": base64.b64encode(message.value() or b"").decode(),
                }
            )
    finally:
        consumer.close()
    # The retry of golden-2 is the same order: the log holds it twice, the view once.
    if len(found) != len(ORDERS):
        raise SystemExit(f"read {len(found)} records, expected {len(ORDERS)}")
    return found


def _headers(message: Any) -> dict[str, str]:
    return {key: value.decode() for key, value in message.headers() or []}


def fold_golden(log: Path, workdir: Path) -> dict[str, Any]:
    """Each user's view after the query side decoded (and upcast) every record of `log`, in
    order, and folded them into a real RocksDB partition: orders, version, every group's summary
    and lines."""
    from query_service.store.rocks import RocksPartitionStore
    from query_service.view.decoding import decode_placed
    from query_service.view.projection import GROUPS

    records = [json.loads(line) for line in log.read_text().splitlines()]
    events = [decode_placed(base64.b64decode(r["value"]), i) for i, r in enumerate(records)]
    store = RocksPartitionStore(workdir / "partition", "golden")
    try:
        store.apply(events, {0: len(events) - 1})
        reader = store.reader()
        users = sorted({event[0] for event in events})
        view: dict[str, Any] = {}
        for user in users:
            summaries = reader.summaries(user, GROUPS)
            view[user] = {
                "version": reader.version(user),
                "orders": [oid for _, oid in _order_ids(reader, user)],
                "groups": {
                    group: {
                        "summary": summary._asdict() if summary is not None else None,
                        "lines": [
                            {**line_id._asdict(), **line._asdict()}
                            for line_id, line in reader.lines(user, group, None, 1000)
                        ],
                    }
                    for group, summary in summaries.items()
                },
            }
        return view
    finally:
        store.close()


def _order_ids(reader: Any, user: str) -> list[tuple[int, str]]:
    return [
        (sequence, json.loads(value)["order_id"])
        for sequence, value in reader.newest_orders(user, None, 1000)
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m devtools.golden VERSION", file=sys.stderr)
        return 2
    version = int(argv[1])
    log, view_file = log_path(version), view_path(version)
    if log.exists():
        print(f"{log} exists: a shipped golden log is never rewritten", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="golden-") as workdir:
        records = record(Path(workdir), version)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    with tempfile.TemporaryDirectory(prefix="golden-view-") as workdir:
        view = fold_golden(log, Path(workdir))
    view_file.write_text(json.dumps(view, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {log} ({len(records)} records) and {view_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
