"""The dead-letter topic: records that are not valid events, with where they came from and why."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Producer

from query_service.exceptions import DeadLetterFailed
from query_service.ports import DeadLetter
from query_service.settings import QuerySettings
from shared.kafka import producer_config

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_MS = 30_000


def letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    return [
        ("error_kind", letter.kind.encode()),
        ("error_message", letter.message[:2000].encode()),
        ("original_topic", letter.topic.encode()),
        ("original_partition", str(letter.partition).encode()),
        ("original_offset", str(letter.offset).encode()),
    ]


class KafkaDeadLetters:
    """Built lazily on first use, so a service that never sees a bad record opens no producer."""

    def __init__(self, settings: QuerySettings) -> None:
        self._settings = settings
        self._producer: Any = None

    def send(self, letters: Sequence[DeadLetter]) -> None:
        if self._producer is None:
            self._producer = Producer(
                producer_config(
                    self._settings, "query-service-dlq", delivery_timeout_ms=DELIVERY_TIMEOUT_MS
                )
            )
        failures: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                failures.append(err)

        for letter in letters:
            while True:
                try:
                    self._producer.produce(
                        self._settings.orders_dlq_topic,
                        value=letter.value,
                        key=letter.key,
                        headers=letter_headers(letter),
                        on_delivery=delivered,
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)
        remaining = self._producer.flush(DELIVERY_TIMEOUT_MS / 1000 + 5)
        if remaining or failures:
            reason = str(failures[0]) if failures else f"{remaining} still queued"
            raise DeadLetterFailed(len(failures) + remaining, reason)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
