"""The topic's event schema in a schema registry, where one runs (SCHEMA_REGISTRY_URL): the
command service registers what its writes make of the topic, the query service checks that it
can read everything registered.

Subject `<topic>-value` (the topic name strategy). What is registered is `topic_schema(n)`: any
OrderPlaced of versions 1..n, n being the version written. It only widens, so each switch passes
a registry's backward-compatibility check (set on the subject when it is created), and a change
that drops a version or narrows one is refused before a single event is written.

The registry speaks Confluent's REST API (Confluent's own, or Apicurio's /apis/ccompat/v7);
confluent-kafka's client is the adapter.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from shared.events import LATEST_VERSION, READABLE_VERSIONS, topic_schema
from shared.exceptions import SchemaRejected

log = logging.getLogger(__name__)

COMPATIBILITY: Final = "BACKWARD"
REQUEST_TIMEOUT_S: Final = 10


def subject_for(topic: str) -> str:
    return f"{topic}-value"


class SchemaRegistry(Protocol):
    """The registry, as the services use it (an adapter raises SchemaRejected when it refuses,
    or cannot be reached)."""

    def register(self, subject: str, schema: str) -> int:
        """Register `schema` (JSON Schema text) under `subject`, creating the subject with backward
        compatibility if it is new; the registry's id of the schema."""
        ...

    def registered(self, subject: str) -> Sequence[tuple[int, str]]:
        """Every (version, schema text) registered under `subject`; none if it does not exist."""
        ...


def register_written(registry: SchemaRegistry, topic: str, version: int) -> int:
    """Before a writer of `version` writes: the topic's schema as it will be, registered."""
    subject = subject_for(topic)
    schema_id = registry.register(subject, json.dumps(topic_schema(version), sort_keys=True))
    log.info(
        "registered the topic's schema up to OrderPlaced v%d under %s (id %d)",
        version,
        subject,
        schema_id,
    )
    return schema_id


@dataclass(frozen=True)
class Unreadable:
    """A schema registered under the topic's subject that this release does not know."""

    subject: str
    version: int


def unreadable(registry: SchemaRegistry, topic: str) -> list[Unreadable]:
    """The schemas registered for the topic that are none of those this release can read: a
    writer of a newer version. Its events will pause their partitions here until the upgrade."""
    subject = subject_for(topic)
    known = [topic_schema(version) for version in READABLE_VERSIONS]
    return [
        Unreadable(subject, version)
        for version, text in registry.registered(subject)
        if _parsed(text) not in known
    ]


def check_readable(registry: SchemaRegistry, topic: str) -> list[Unreadable]:
    """`unreadable`, each one logged as a warning; a reader goes on (what it can read it folds)."""
    found = unreadable(registry, topic)
    for schema in found:
        log.warning(
            "the schema registry holds version %d of %s, which this service cannot read (it "
            "reads OrderPlaced up to v%d): upgrade the query service before writers use it",
            schema.version,
            schema.subject,
            LATEST_VERSION,
        )
    return found


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


class ConfluentSchemaRegistry:
    """The SchemaRegistry port over confluent-kafka's client (Confluent's REST API)."""

    def __init__(self, url: str) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self._url = url
        self._client = SchemaRegistryClient({"url": url, "timeout": REQUEST_TIMEOUT_S})

    def register(self, subject: str, schema: str) -> int:
        from confluent_kafka.schema_registry import Schema

        try:
            if not self._versions(subject):
                self._client.set_compatibility(subject_name=subject, level=COMPATIBILITY)
            schema_id: int = self._client.register_schema(subject, Schema(schema, "JSON"))
        except Exception as exc:  # the client raises its own errors and httpx's
            raise SchemaRejected(
                f"the schema registry at {self._url} did not register {subject}: {exc}"
            ) from exc
        return schema_id

    def registered(self, subject: str) -> list[tuple[int, str]]:
        try:
            return [
                (version, str(self._client.get_version(subject, version).schema.schema_str))
                for version in self._versions(subject)
            ]
        except Exception as exc:
            raise SchemaRejected(
                f"the schema registry at {self._url} could not list {subject}: {exc}"
            ) from exc

    def _versions(self, subject: str) -> list[int]:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            versions: list[int] = self._client.get_versions(subject)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return []
            raise
        return versions
