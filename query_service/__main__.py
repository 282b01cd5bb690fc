"""`python -m query_service [serve|rebuild]`: serve the API (default) or rebuild the view."""

from __future__ import annotations

import os
import sys

from query_service.settings import QuerySettings
from shared.entrypoint import load_settings, settle_heap
from shared.logs import configure_logging, log_format, set_instance

USAGE = "usage: python -m query_service [serve|rebuild]"


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    if command not in ("serve", "rebuild") or len(argv) > 1:
        print(USAGE, file=sys.stderr)
        return 2
    configure_logging("query_service", log_format(os.environ))
    settings = load_settings(QuerySettings, "query service")
    set_instance(settings.query_instance_id)
    if command == "rebuild":
        from query_service.ingest.rebuild import rebuild

        settle_heap()
        rebuild(settings)
        return 0
    from query_service.app import SHUTDOWN_GRACE_S, create_app, drain
    from shared.access import OPS_PATHS
    from shared.entrypoint import serve_with_ops
    from shared.lifecycle import exit_status
    from shared.tracing import Tracing, enabled_by

    tracing = (
        Tracing.exporting("query_service", settings.query_instance_id)
        if enabled_by(os.environ)
        else None
    )
    app = create_app(settings, tracing=tracing)
    settle_heap()
    # "auto" picks uvloop and httptools when they are installed.
    serve_with_ops(
        app,
        settings.query_ops_host,
        settings.query_ops_port,
        # /cluster reads only the membership's snapshot: safe from the ops listener's thread.
        (*OPS_PATHS, "/cluster"),
        # Streams end at once (relayed ones too: drain), reads still waiting get this long.
        grace_s=SHUTDOWN_GRACE_S,
        on_drain=lambda: drain(app),
        host=settings.query_host,
        port=settings.query_port,
        loop="auto",
        http="auto",
        log_level="info",
        access_log=False,
        limit_concurrency=settings.query_limit_concurrency,
    )
    # A part that failed for good ends the process through SIGTERM: say so in the exit status.
    return exit_status(app)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
