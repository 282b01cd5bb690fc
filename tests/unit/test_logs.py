"""shared/logs.py: one JSON object per line (or today's text), never a token."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from devtools.issuer import TestIssuer
from shared.logs import REDACTED, configure_logging, log_format, redact, set_instance


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_a_json_line_names_level_logger_message_service_instance_and_extras(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("query_service", "json")
    set_instance("q-1")
    logging.getLogger("query_service.ingest.batch").warning(
        "dead-lettered %s[%d]@%d", "orders", 3, 41, extra={"partition": 3, "offset": 41}
    )
    logging.getLogger("tests.logs.second").info('a "quoted"\nmessage on two lines')
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2  # the newline inside a message stays inside its object
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING"
    assert first["logger"] == "query_service.ingest.batch"
    assert first["message"] == "dead-lettered orders[3]@41"
    assert (first["service"], first["instance"]) == ("query_service", "q-1")
    assert (first["partition"], first["offset"]) == (3, 41)
    assert "time" in first
    assert second["message"] == 'a "quoted"\nmessage on two lines'


def test_no_token_reaches_a_line_in_either_format(capsys: pytest.CaptureFixture[str]) -> None:
    token = TestIssuer().mint("alice")
    for fmt in ("json", "text"):
        configure_logging("command_service", fmt)  # type: ignore[arg-type]
        log = logging.getLogger("test")
        log.warning("refused %s", token)
        log.warning("header was Authorization: Bearer %s", "opaque-secret-value")
        try:
            raise ValueError(f"bad token {token}")
        except ValueError:
            log.exception("failed")
    err = capsys.readouterr().err
    assert token.rsplit(".", 1)[1] not in err
    assert token.split(".", 1)[0] not in err
    assert "opaque-secret-value" not in err
    assert err.count(REDACTED) >= 6


def test_text_keeps_todays_human_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("query_service", "text")
    logging.getLogger("query_service.ingest.runner").info("caught up with partition %d", 2)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(" INFO query_service.ingest.runner caught up with partition 2")


def test_log_format_is_json_unless_text_and_anything_else_stops_start_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert log_format({}) == "json"
    assert log_format({"LOG_FORMAT": " Text "}) == "text"
    with pytest.raises(SystemExit) as stopped:
        log_format({"LOG_FORMAT": "yaml"})
    assert stopped.value.code == 2
    assert "LOG_FORMAT='yaml': one of json, text" in capsys.readouterr().err


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "partition 3 paused at offset 41: schema_version 2 (eyJ alone is not a token)"
    assert redact(text) == text
