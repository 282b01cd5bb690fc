"""`python -m command_service`: serve the command service with uvicorn."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from command_service.app import create_app
from command_service.settings import CommandSettings


def _settings_problem(exc: ValidationError) -> str:
    lines = [
        f"  {'.'.join(str(part) for part in err['loc']).upper()}: {err['msg']}"
        for err in exc.errors(include_url=False)
    ]
    return "invalid command service settings (environment variables):\n" + "\n".join(lines)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = CommandSettings()
    except ValidationError as exc:
        print(_settings_problem(exc), file=sys.stderr)
        return 2
    uvicorn.run(
        create_app(settings),
        host=settings.command_host,
        port=settings.command_port,
        access_log=settings.command_access_log,
        log_level="info",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
