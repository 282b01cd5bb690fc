"""`python -m command_service`: serve the command service with uvicorn."""

from __future__ import annotations

import uvicorn

from command_service.app import create_app
from command_service.settings import CommandSettings
from shared.entrypoint import configure_logging, load_settings


def main() -> int:
    configure_logging()
    settings = load_settings(CommandSettings, "command service")
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
