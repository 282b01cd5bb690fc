"""`python -m command_service`: serve the command service with uvicorn."""

from __future__ import annotations

import os
import socket

from command_service.app import create_app
from command_service.settings import CommandSettings
from shared.entrypoint import load_settings, serve_with_ops
from shared.lifecycle import exit_status
from shared.logs import configure_logging, log_format, set_instance
from shared.tracing import Tracing, enabled_by


def main() -> int:
    configure_logging("command_service", log_format(os.environ))
    settings = load_settings(CommandSettings, "command service")
    instance = f"{socket.gethostname()}-{settings.command_port}"
    set_instance(instance)  # the logs' instance, and the traces' below
    tracing = Tracing.exporting("command_service", instance) if enabled_by(os.environ) else None
    app = create_app(settings, tracing=tracing)
    serve_with_ops(
        app,
        settings.command_ops_host,
        settings.command_ops_port,
        # An order in flight is answered within its acknowledgement timeout (then 503).
        grace_s=settings.order_ack_timeout_ms / 1000 + 1,
        host=settings.command_host,
        port=settings.command_port,
        access_log=settings.command_access_log,
        log_level="info",
        limit_concurrency=settings.command_limit_concurrency,
    )
    # A fatal publisher failure ends the process through SIGTERM: say so in the exit status.
    return exit_status(app)


if __name__ == "__main__":
    raise SystemExit(main())
