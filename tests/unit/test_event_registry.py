"""The topic's schema: what each version's writer registers, that it only widens (checked on the
golden records with a JSON Schema validator), and what each service does with a registry behind
its port (a fake here; the real registry: tests/integration/test_registry.py)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from jsonschema.validators import validator_for

from command_service.app import create_app
from command_service.settings import CommandSettings
from devtools.fakes import InMemoryPublisher
from devtools.golden import log_path
from query_service.settings import QuerySettings
from shared.events import READABLE_VERSIONS, json_schema, topic_schema
from shared.exceptions import SchemaRejected
from shared.registry import Unreadable, subject_for, unreadable
from tests.query_fakes import FakeLog, app_over_fakes


@dataclass
class FakeRegistry:
    """Subjects and their schemas' texts; `refuse` makes every registration fail with it."""

    subjects: dict[str, list[str]] = field(default_factory=dict)
    refuse: str | None = None

    def register(self, subject: str, schema: str) -> int:
        if self.refuse is not None:
            raise SchemaRejected(self.refuse)
        versions = self.subjects.setdefault(subject, [])
        if schema not in versions:
            versions.append(schema)
        return versions.index(schema) + 1

    def registered(self, subject: str) -> Sequence[tuple[int, str]]:
        return list(enumerate(self.subjects.get(subject, []), start=1))


def _golden(version: int) -> list[object]:
    lines = log_path(version).read_text().splitlines()
    return [json.loads(base64.b64decode(json.loads(line)["value"])) for line in lines]


@pytest.mark.parametrize("up_to", READABLE_VERSIONS)
def test_the_topic_schema_admits_every_golden_record_up_to_its_version_and_no_later(
    up_to: int,
) -> None:
    schema = topic_schema(up_to)
    validator = validator_for(schema)(schema)
    for version in READABLE_VERSIONS:
        own = validator_for(json_schema(version))(json_schema(version))
        for record in _golden(version):
            assert own.is_valid(record)
            assert validator.is_valid(record) == (version <= up_to), (version, record)


def _command(registry: FakeRegistry, publisher: InMemoryPublisher, version: int) -> TestClient:
    settings = CommandSettings(auth_disabled=True, command_event_version=version)
    app = create_app(settings, publisher, provision_topic=lambda: None, schema_registry=registry)
    return TestClient(app)


def test_each_writer_registers_the_topic_schema_of_what_it_writes_before_it_writes() -> None:
    registry = FakeRegistry()
    for version in (1, 2, 2):
        with _command(registry, InMemoryPublisher(), version) as client:
            assert client.get("/health/live").status_code == 200
    subject = subject_for(CommandSettings().orders_topic)
    assert [json.loads(text) for text in registry.subjects[subject]] == [
        topic_schema(1),
        topic_schema(2),
    ]


def test_a_refused_schema_ends_the_start_up_before_anything_is_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = InMemoryPublisher()
    registry = FakeRegistry(refuse="incompatible with version 1")
    with pytest.raises(SchemaRejected), _command(registry, publisher, 2):
        pass
    assert not publisher.started
    assert "not starting: OrderPlaced v2 cannot be written" in caplog.text


def test_the_query_service_warns_of_a_registered_version_it_cannot_read_and_serves_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = QuerySettings(query_state_dir=tmp_path, auth_disabled=True)
    subject = subject_for(settings.orders_topic)
    newer = json.dumps({"title": "OrderPlaced v3", "type": "object"})
    registry = FakeRegistry({subject: [json.dumps(topic_schema(1)), json.dumps(topic_schema(2))]})
    assert unreadable(registry, settings.orders_topic) == []
    registry.subjects[subject].append(newer)
    assert unreadable(registry, settings.orders_topic) == [Unreadable(subject, 3)]

    app = app_over_fakes(settings, FakeLog(settings.orders_topic, 6), schema_registry=registry)
    with caplog.at_level(logging.WARNING), TestClient(app) as client:
        assert client.get("/health/live").status_code == 200
    assert f"holds version 3 of {subject}, which this service cannot read" in caplog.text
