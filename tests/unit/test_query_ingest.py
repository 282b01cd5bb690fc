"""Ingest.process on the in-memory store: what a batch applies, skips, dead-letters and stores."""

from __future__ import annotations

import time

import orjson
import pytest

from query_service.exceptions import DeadLetterFailed
from query_service.ingest.batch import Ingest
from query_service.metrics import QueryMetrics
from query_service.view.projection import Line, LineId, Summary
from tests.factories import order
from tests.query_fakes import FakeDeadLetters, FakeLog, FakeMessage, MemoryPartitionStores

TOPIC = "orders"


@pytest.fixture
def stores() -> MemoryPartitionStores:
    return MemoryPartitionStores()


@pytest.fixture
def letters() -> FakeDeadLetters:
    return FakeDeadLetters()


@pytest.fixture
def ingest(stores: MemoryPartitionStores, letters: FakeDeadLetters) -> Ingest:
    ingest = Ingest(stores, letters, QueryMetrics())
    for partition in range(3):
        assert ingest.take(partition, "topic-id") == -1
    for store in stores.stores.values():
        store.writes = 0  # count the batches' writes only
    return ingest


def _log(*events_by_partition: tuple[int, object]) -> FakeLog:
    log = FakeLog(TOPIC, 3)
    for partition, value in events_by_partition:
        if isinstance(value, bytes):
            log.append(partition, value)
        else:
            log.append_event(partition, value)  # type: ignore[arg-type]
    return log


def _all(log: FakeLog) -> list[FakeMessage]:
    return [message for records in log.records for message in records]


def test_a_batch_is_folded_and_its_offsets_stored_in_one_write(
    ingest: Ingest, stores: MemoryPartitionStores
) -> None:
    log = _log((0, order("alice", ("TEA", 499, 2))), (0, order("alice", ("POT", 5001, 1))))
    log.append_event(2, order("bob", ("MUG", 500, 1)))

    applied = ingest.process(_all(log), owned={0, 1, 2})

    assert applied is not None
    assert applied.offsets == {0: 1, 2: 0}
    assert {line_id.user_id for line_id in applied.changes.lines} == {"alice", "bob"}
    assert [stores.stores[p].writes for p in range(3)] == [1, 0, 1]
    assert stores.stores[0].applied_offsets() == {0: 1}
    assert stores.stores[2].applied_offsets() == {2: 0}
    alice = stores.stores[0].reader().summaries("alice", ("cheap", "expensive"))
    assert alice["cheap"] == Summary(item_count=2, total_minor=998, line_count=1)
    assert alice["expensive"] == Summary(item_count=1, total_minor=5001, line_count=1)


def test_an_order_already_applied_is_not_folded_twice(
    ingest: Ingest, stores: MemoryPartitionStores
) -> None:
    placed = order("alice", ("TEA", 100, 1))
    log = _log((0, placed), (0, placed))
    ingest.process(_all(log)[:1], owned={0})
    ingest.process(_all(log)[1:], owned={0})

    assert stores.stores[0].reader().summaries("alice", ("cheap",))["cheap"] == Summary(1, 100, 1)
    assert stores.stores[0].applied_offsets() == {0: 1}


def test_records_at_or_below_the_applied_offset_and_of_other_partitions_are_skipped(
    ingest: Ingest, stores: MemoryPartitionStores
) -> None:
    log = _log((0, order("alice", ("TEA", 100, 1))), (1, order("bob", ("TEA", 100, 1))))
    first = ingest.process(_all(log), owned={0})
    again = ingest.process(_all(log), owned={0})

    assert first is not None
    assert first.offsets == {0: 0}
    assert again is None
    assert stores.stores[1].reader().summaries("bob", ("cheap",)) == {"cheap": None}
    assert stores.stores[1].writes == 0


def test_a_bad_record_becomes_a_dead_letter_and_the_rest_is_applied(
    ingest: Ingest, stores: MemoryPartitionStores, letters: FakeDeadLetters
) -> None:
    log = _log(
        (1, b"not json"), (1, order("alice", ("TEA", 100, 1))), (1, b'{"schema_version": 0}')
    )

    applied = ingest.process(_all(log), owned={1})

    assert applied is not None
    assert applied.offsets == {1: 2}
    assert [(d.offset, d.kind) for d in letters.sent] == [
        (0, "invalid_json"),
        (2, "unknown_version"),
    ]
    assert letters.sent[0].value == b"not json"
    assert stores.stores[1].applied_offsets() == {1: 2}


def test_a_failed_dead_letter_send_applies_nothing(
    ingest: Ingest, stores: MemoryPartitionStores, letters: FakeDeadLetters
) -> None:
    letters.failure = "broker away"
    log = _log((0, order("alice", ("TEA", 100, 1))), (0, b"garbage"))

    with pytest.raises(DeadLetterFailed, match="broker away"):
        ingest.process(_all(log), owned={0})

    assert all(store.writes == 0 for store in stores.stores.values())
    assert stores.stores[0].applied_offsets() == {}
    letters.failure = None
    assert ingest.process(_all(log), owned={0}) is not None
    assert stores.stores[0].applied_offsets() == {0: 1}


def test_one_order_listing_a_line_twice_counts_once_and_lines_page_in_sku_order(
    ingest: Ingest, stores: MemoryPartitionStores
) -> None:
    log = _log(
        (0, order("alice", ("TEA", 100, 1), ("TEA", 100, 2), ("ANT", 100, 1), ("TEA", 90, 1))),
        (0, order("alice", ("TEA", 100, 5))),
    )
    ingest.process(_all(log), owned={0})

    reader = stores.stores[0].reader()
    assert reader.lines("alice", "cheap", None, 10) == [
        (LineId("alice", "cheap", "ANT", 100), Line("Item ANT", 1, 1)),
        (LineId("alice", "cheap", "TEA", 90), Line("Item TEA", 1, 1)),
        (LineId("alice", "cheap", "TEA", 100), Line("Item TEA", 8, 2)),
    ]
    assert reader.lines("alice", "cheap", ("TEA", 90), 10)[0][0].unit_price_minor == 100
    assert reader.summaries("alice", ("cheap",))["cheap"] == Summary(10, 990, 3)
    newest = reader.newest_orders("alice", None, 10)
    assert [sequence for sequence, _ in newest] == [2, 1]


def test_an_event_newer_than_this_code_pauses_its_partition_only(
    ingest: Ingest, stores: MemoryPartitionStores, letters: FakeDeadLetters
) -> None:
    newer = order("bob", ("TEA", 100, 1)).model_dump(mode="json") | {"schema_version": 3}
    log = _log(
        (0, order("bob", ("TEA", 100, 1))),
        (0, orjson.dumps(newer)),
        (0, order("bob", ("MUG", 700, 1))),
        (2, order("carol", ("TEA", 100, 1))),
    )

    applied = ingest.process(_all(log), owned={0, 2})

    assert applied is not None
    assert applied.offsets == {0: 0, 2: 0}  # partition 0 stops before the newer event
    assert applied.paused[0].offset == 1
    assert "upgrade the query service" in applied.paused[0].reason
    assert not letters.sent  # never a dead letter: nothing is lost
    assert stores.stores[0].applied_offsets() == {0: 0}
    # Fetched again (until an upgrade), it stops there again and applies nothing after it.
    again = ingest.process(_all(log), owned={0, 2})
    assert again is not None
    assert again.offsets == {}
    assert stores.stores[0].reader().summaries("bob", ("affordable",)) == {"affordable": None}


def test_a_users_version_is_their_last_events_offset_however_batches_fall() -> None:
    log = _log(
        (0, order("alice", ("TEA", 100, 1))),
        (0, order("bob", ("MUG", 600, 1))),
        (0, order("alice", ("POT", 700, 1))),
        (0, order("carol", ("PAN", 800, 1))),
    )
    messages = _all(log)
    versions = []
    for split in (1, 2, 4):  # one event a batch, two a batch, one batch
        copy = MemoryPartitionStores()
        ingest = Ingest(copy, FakeDeadLetters(), QueryMetrics())
        ingest.take(0, "topic-id")
        for start in range(0, len(messages), split):
            ingest.process(messages[start : start + split], owned={0})
        reader = copy.stores[0].reader()
        versions.append({user: reader.version(user) for user in ("alice", "bob", "carol")})
    assert versions == [{"alice": 2, "bob": 1, "carol": 3}] * 3


def test_freshness_is_the_age_of_each_partitions_oldest_event_when_its_batch_applied(
    stores: MemoryPartitionStores, letters: FakeDeadLetters
) -> None:
    metrics = QueryMetrics()
    ingest = Ingest(stores, letters, metrics)
    for partition in range(3):
        ingest.take(partition, "topic-id")
    now_ms = int(time.time() * 1000)
    value = orjson.dumps(order("alice", ("TEA", 100, 1)).model_dump(mode="json"))
    messages = [
        FakeMessage(TOPIC, 0, 0, value, b"alice", (1, now_ms - 30_000)),
        FakeMessage(TOPIC, 0, 1, value, b"alice", (1, now_ms - 1_000)),
        FakeMessage(TOPIC, 2, 0, value, b"alice", (1, now_ms - 200)),
        FakeMessage(TOPIC, 1, 0, value, b"alice", (0, -1)),  # no timestamp: not observed
    ]

    ingest.process(messages, owned={0, 1, 2})

    def observed(partition: str, bound: str) -> float:
        value = metrics.registry.get_sample_value(
            "query_freshness_seconds_bucket", {"partition": partition, "le": bound}
        )
        return value or 0.0

    assert observed("0", "10.0") == 0  # the oldest, 30 s: one batch, one observation
    assert observed("0", "60.0") == 1
    assert observed("2", "0.1") == 0
    assert observed("2", "1.0") == 1
    assert observed("1", "+Inf") == 0
