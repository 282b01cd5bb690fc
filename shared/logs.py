"""Logs a machine can read: one JSON object per line (`LOG_FORMAT=json`, the default) with the
level, the logger, the message, the service, the instance and whatever a call site adds with
`extra=` (a partition, an offset); or today's human lines (`LOG_FORMAT=text`, as `make run`
sets).

Whatever the format, a bearer token or anything shaped like a JWT is replaced before the line is
written: a token pasted into an error message must not outlive the request in a log file.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Final, Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["json", "text"]
FORMATS: Final[tuple[LogFormat, ...]] = ("json", "text")
LOG_FORMAT_VARIABLE: Final = "LOG_FORMAT"
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"
REDACTED: Final = "[redacted]"

# Three base64url segments, the first one a JSON object's start ('{"' encodes as 'eyJ'): a JWT,
# signed or not. And whatever follows "Bearer " in a header someone logged whole.
_SECRETS: Final = re.compile(
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*|(?i:bearer)\s+[^\s\"',;]+"
)


def redact(text: str) -> str:
    return _SECRETS.sub(REDACTED, text)


class _Context(logging.Filter):
    """Stamps every record with the service and the instance; the instance is known only once
    the settings are read, so it is set later (a str swapped whole)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self.instance = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.instance = self.instance
        return True


class _Redacting(logging.Formatter):
    """Today's text format, with secrets replaced."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JsonLines(JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            "{levelname}{name}{message}{service}{instance}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


_context: _Context | None = None


def log_format(environ: Mapping[str, str]) -> LogFormat:
    """LOG_FORMAT from `environ`, or exit 2 saying what it may be (before settings are read:
    their errors are logged in it)."""
    value = environ.get(LOG_FORMAT_VARIABLE, "json").strip().lower() or "json"
    if value not in FORMATS:
        print(
            f"invalid {LOG_FORMAT_VARIABLE}={value!r}: one of {', '.join(FORMATS)}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return value


def configure_logging(service: str, fmt: LogFormat) -> None:
    """The root logger writes `fmt` lines to stderr, each stamped with `service`. Called by a
    `__main__` only: it configures the whole process."""
    global _context
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonLines() if fmt == "json" else _Redacting(TEXT_FORMAT))
    _context = _Context(service)
    handler.addFilter(_context)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # A library's warning is a line like any other, not raw text between the JSON objects.
    logging.captureWarnings(True)
    # One line per request a query instance forwards to another would drown everything else.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def set_instance(instance_id: str) -> None:
    """Name this process's instance on every line from now on."""
    if _context is not None:
        _context.instance = instance_id
