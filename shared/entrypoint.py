"""What both services do before serving: configure logging and read settings, or exit 2 naming
every variable that is wrong.
"""

from __future__ import annotations

import logging
import sys
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

SETTINGS_EXIT_CODE = 2

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # One line per request a query instance forwards to another would drown everything else.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def settings_problem(service: str, exc: ValidationError) -> str:
    lines = [
        f"  {'.'.join(str(part) for part in err['loc']).upper()}: {err['msg']}"
        for err in exc.errors(include_url=False)
    ]
    return f"invalid {service} settings (environment variables):\n" + "\n".join(lines)


def load_settings(cls: type[SettingsT], service: str) -> SettingsT:
    """The settings from the environment; on a bad value, print what is wrong and exit 2."""
    try:
        return cls()
    except ValidationError as exc:
        print(settings_problem(service, exc), file=sys.stderr)
        raise SystemExit(SETTINGS_EXIT_CODE) from None
