"""The dead-letter topic: records that are not valid events, with where they came from and why.

A letter must never block the consumer: one that cannot be written whole (too large for the
topic, refused as a record) is written again with its value truncated to fit, and as a last
resort with no key or value at all; its headers say which and why. Only errors that a retry can
cure (the broker away, a timeout) fail a send, and the runner retries the batch.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from query_service.exceptions import DeadLetterFailed
from query_service.ports import DeadLetter
from query_service.settings import QuerySettings
from shared.kafka import TopicSpec, producer_config

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_MS = 30_000
# The broker's default message.max.bytes, which the orders topic (created without an override)
# accepts: the dead-letter topic accepts at least as much, and so does its producer.
DEAD_LETTER_MAX_BYTES = 1_048_588
# Room for the record batch's own framing and the headers' lengths, so a fitted letter is
# never refused by the broker for a few bytes.
FRAMING_BYTES = 1024
MESSAGE_LIMIT = 2000

# Refusals of a record as such (by the broker, or by librdkafka before sending): writing the
# same bytes again can never succeed, a smaller form may.
_REFUSED_RECORD = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.INVALID_MSG,  # the broker's CORRUPT_MESSAGE
    KafkaError._INVALID_ARG,
}


def dead_letter_topic(settings: QuerySettings) -> TopicSpec:
    return TopicSpec(
        settings.orders_dlq_topic,
        1,
        settings.kafka_replication_factor,
        {"retention.ms": "-1", "max.message.bytes": str(DEAD_LETTER_MAX_BYTES)},
    )


class Form(enum.Enum):
    """How much of the original record a letter carries, from all of it to none."""

    WHOLE = "whole"
    TRUNCATED = "truncated"
    DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A letter as it is written: its form, and why a smaller form was needed."""

    letter: DeadLetter
    form: Form = Form.WHOLE
    why: str = ""

    def smaller(self, why: str) -> Outgoing | None:
        if self.form is Form.WHOLE:
            return replace(self, form=Form.TRUNCATED, why=why)
        if self.form is Form.TRUNCATED:
            return replace(self, form=Form.DROPPED, why=why)
        return None


def letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    return [
        ("error_kind", letter.kind.encode()),
        ("error_message", letter.message[:MESSAGE_LIMIT].encode()),
        ("original_topic", letter.topic.encode()),
        ("original_partition", str(letter.partition).encode()),
        ("original_offset", str(letter.offset).encode()),
    ]


def _size(headers: Sequence[tuple[str, bytes]]) -> int:
    return sum(len(name) + len(value) for name, value in headers)


def fitted(
    out: Outgoing, limit: int = DEAD_LETTER_MAX_BYTES
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The key, value and headers of a letter in its form; a whole one too large is truncated."""
    letter = out.letter
    headers = letter_headers(letter)
    key, value = letter.key, letter.value
    original = value or b""
    form, why = out.form, out.why
    budget = limit - FRAMING_BYTES - _size(headers) - 200  # 200: the headers added below
    if form is Form.WHOLE and len(key or b"") + len(original) > budget:
        form, why = Form.TRUNCATED, f"larger than the dead-letter limit of {limit} bytes"
    if form is Form.TRUNCATED:
        room = budget - len(key or b"")
        if room < 0:
            form, why = Form.DROPPED, why or "the key alone is too large"
        else:
            value = original[:room]
    if form is Form.DROPPED:
        key, value = None, None
    if form is not Form.WHOLE:
        headers += [
            ("truncated", b"true"),
            ("value_form", form.value.encode()),
            ("truncated_reason", why[:500].encode()),
            ("original_size", str(len(original)).encode()),
            ("original_sha256", hashlib.sha256(original).hexdigest().encode()),
        ]
    return key, value, headers


ProducerFactory = Callable[[dict[str, Any]], Any]


class KafkaDeadLetters:
    """Built lazily on first use, so a service that never sees a bad record opens no producer."""

    def __init__(
        self, settings: QuerySettings, producer_factory: ProducerFactory = Producer
    ) -> None:
        self._settings = settings
        self._producer_factory = producer_factory
        self._producer: Any = None

    def _open(self) -> Any:
        if self._producer is None:
            config = producer_config(
                self._settings, "query-service-dlq", delivery_timeout_ms=DELIVERY_TIMEOUT_MS
            )
            config["message.max.bytes"] = DEAD_LETTER_MAX_BYTES
            self._producer = self._producer_factory(config)
        return self._producer

    def send(self, letters: Sequence[DeadLetter]) -> None:
        producer = self._open()
        outgoing = [Outgoing(letter) for letter in letters]
        while outgoing:
            refused: list[tuple[Outgoing, KafkaError]] = []
            failures: list[KafkaError] = []
            for out in outgoing:
                self._produce(producer, out, refused, failures)
            remaining = producer.flush(DELIVERY_TIMEOUT_MS / 1000 + 5)
            if remaining or failures:
                reason = str(failures[0]) if failures else f"{remaining} still queued"
                raise DeadLetterFailed(len(failures) + remaining, reason)
            outgoing = []
            for out, error in refused:
                smaller = out.smaller(error.str())
                if smaller is None:
                    raise DeadLetterFailed(1, f"refused even without its value: {error.str()}")
                log.error(
                    "dead letter for %s[%d]@%d refused (%s): writing it %s",
                    out.letter.topic,
                    out.letter.partition,
                    out.letter.offset,
                    error.str(),
                    smaller.form.value,
                    extra={"partition": out.letter.partition, "offset": out.letter.offset},
                )
                outgoing.append(smaller)

    def _produce(
        self,
        producer: Any,
        out: Outgoing,
        refused: list[tuple[Outgoing, KafkaError]],
        failures: list[KafkaError],
    ) -> None:
        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is None:
                return
            if err.code() in _REFUSED_RECORD:
                refused.append((out, err))
            else:
                failures.append(err)

        key, value, headers = fitted(out)
        while True:
            try:
                producer.produce(
                    self._settings.orders_dlq_topic,
                    value=value,
                    key=key,
                    headers=headers,
                    on_delivery=delivered,
                )
                return
            except BufferError:
                producer.poll(0.1)
            except KafkaException as exc:
                delivered(exc.args[0], None)
                return

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)


@dataclass
class CountedDeadLetters:
    """A rebuild's dead letters: counted by kind, never sent. They were sent when the live view
    first met them; sending them again would repeat every historical one on each rebuild."""

    counts: Counter[str]

    def __init__(self) -> None:
        self.counts = Counter()

    def send(self, letters: Sequence[DeadLetter]) -> None:
        self.counts.update(letter.kind for letter in letters)

    def close(self) -> None:
        pass

    def summary(self) -> str:
        if not self.counts:
            return "no records that are not valid events"
        kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(self.counts.items()))
        return (
            f"{sum(self.counts.values())} records that are not valid events ({kinds}); "
            "not dead-lettered again (they were when the live view first met them)"
        )
