"""Dead letters never block the consumer: a letter too large, or refused as a record, is written
truncated or, last, without its value; only errors a retry can cure fail a send. A small fake
producer plays librdkafka's part (its local size check) and the broker's (its refusals)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from query_service.exceptions import DeadLetterFailed
from query_service.ingest.dead_letters import (
    DEAD_LETTER_MAX_BYTES,
    CountedDeadLetters,
    KafkaDeadLetters,
    dead_letter_topic,
)
from query_service.ports import DeadLetter
from query_service.settings import QuerySettings

Headers = list[tuple[str, bytes]]


@dataclass
class Written:
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]


@dataclass
class FakeProducer:
    """librdkafka's local check (message.max.bytes from the config), then the broker's answer:
    `broker_limit` refuses larger records as MSG_SIZE_TOO_LARGE; `away` times every one out."""

    config: dict[str, Any]
    broker_limit: int | None = None
    away: bool = False
    written: list[Written] = field(default_factory=list)
    reports: list[tuple[Callable[[KafkaError | None, Any], None], KafkaError | None]] = field(
        default_factory=list
    )

    def produce(
        self,
        topic: str,
        *,
        value: bytes | None,
        key: bytes | None,
        headers: Headers,
        on_delivery: Callable[[KafkaError | None, Any], None],
    ) -> None:
        size = len(value or b"") + len(key or b"") + sum(len(k) + len(v) for k, v in headers)
        if size > self.config["message.max.bytes"]:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        error: KafkaError | None = None
        if self.away:
            error = KafkaError(KafkaError._MSG_TIMED_OUT, retriable=True)
        elif self.broker_limit is not None and size > self.broker_limit:
            error = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
        else:
            self.written.append(Written(key, value, {k: v.decode() for k, v in headers}))
        self.reports.append((on_delivery, error))

    def poll(self, timeout: float) -> int:
        return self.flush(timeout)

    def flush(self, timeout: float) -> int:
        reports, self.reports = self.reports, []
        for on_delivery, error in reports:
            on_delivery(error, None)
        return 0


def _letter(value: bytes, offset: int = 7, key: bytes | None = b"u1") -> DeadLetter:
    return DeadLetter("orders", 3, offset, key, value, "invalid_json", "not JSON")


def _sink(**fake: Any) -> tuple[KafkaDeadLetters, list[FakeProducer]]:
    made: list[FakeProducer] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(config, **fake))
        return made[-1]

    return KafkaDeadLetters(QuerySettings(), producer_factory=factory), made


def test_a_small_letter_is_written_whole() -> None:
    sink, made = _sink()
    sink.send([_letter(b"\x00garbage")])

    [written] = made[0].written
    assert (written.key, written.value) == (b"u1", b"\x00garbage")
    assert written.headers["error_kind"] == "invalid_json"
    assert (written.headers["original_partition"], written.headers["original_offset"]) == ("3", "7")
    assert "truncated" not in written.headers


def test_a_letter_too_large_is_written_truncated_with_what_it_was() -> None:
    original = bytes(range(256)) * 6000  # 1.5 MB
    sink, made = _sink()
    sink.send([_letter(b"small", 1), _letter(original, 2), _letter(b"small", 3)])

    assert [w.headers["original_offset"] for w in made[0].written] == ["1", "2", "3"]
    truncated = made[0].written[1]
    assert truncated.value is not None
    assert 0 < len(truncated.value) < DEAD_LETTER_MAX_BYTES
    assert original.startswith(truncated.value)
    assert truncated.headers["truncated"] == "true"
    assert truncated.headers["value_form"] == "truncated"
    assert truncated.headers["original_size"] == str(len(original))
    assert truncated.headers["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert made[0].config["message.max.bytes"] == DEAD_LETTER_MAX_BYTES


def test_a_letter_the_broker_keeps_refusing_is_written_without_its_value() -> None:
    # A dead-letter topic set (by hand) to accept far less than the orders topic.
    sink, made = _sink(broker_limit=4000)
    sink.send([_letter(b"x" * 10_000, 1), _letter(b"fine", 2)])

    by_offset = {w.headers["original_offset"]: w for w in made[0].written}
    assert sorted(by_offset) == ["1", "2"]  # each once
    dropped = by_offset["1"]
    assert (dropped.key, dropped.value) == (None, None)
    assert dropped.headers["value_form"] == "dropped"
    assert "too large" in dropped.headers["truncated_reason"].lower()
    assert dropped.headers["original_size"] == "10000"
    assert by_offset["2"].value == b"fine"


def test_a_key_too_large_to_keep_drops_the_record() -> None:
    sink, made = _sink()
    sink.send([_letter(b"v", key=b"k" * 2_000_000)])

    [written] = made[0].written
    assert (written.key, written.value) == (None, None)
    assert written.headers["value_form"] == "dropped"


def test_a_broker_away_fails_the_send_for_the_runner_to_retry() -> None:
    sink, _ = _sink(away=True)
    with pytest.raises(DeadLetterFailed):
        sink.send([_letter(b"x")])


def test_the_topic_accepts_what_the_producer_may_send() -> None:
    spec = dead_letter_topic(QuerySettings())
    assert int(spec.config["max.message.bytes"]) >= DEAD_LETTER_MAX_BYTES
    assert spec.config["retention.ms"] == "-1"


def test_a_rebuild_counts_its_dead_letters_and_sends_none() -> None:
    counted = CountedDeadLetters()
    counted.send([_letter(b"a"), _letter(b"b")])
    counted.send([DeadLetter("orders", 0, 1, None, b"{}", "schema", "missing fields")])

    assert counted.counts == {"invalid_json": 2, "schema": 1}
    assert "3 records" in counted.summary()
    assert "invalid_json: 2" in counted.summary()
