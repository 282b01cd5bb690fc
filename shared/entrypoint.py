"""What both services do before serving: configure logging and read settings, or exit 2 naming
every variable that is wrong; then serve the API and the ops listener side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any, TypeVar

import uvicorn
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from starlette.types import ASGIApp

from shared.access import OpsListener

SETTINGS_EXIT_CODE = 2

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


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


class _OpsServer(uvicorn.Server):
    # The main server owns SIGINT/SIGTERM; this one stops when the main one has.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve_with_ops(app: ASGIApp, ops_host: str, ops_port: int, **options: Any) -> None:
    """Serve `app` with uvicorn `options` and, once it has started, the same app as the ops
    listener (no lifespan of its own, no concurrency limit) on `ops_host:ops_port`."""
    main = uvicorn.Config(app, **options)
    server = uvicorn.Server(main)
    ops = _OpsServer(
        uvicorn.Config(
            OpsListener(app),
            host=ops_host,
            port=ops_port,
            lifespan="off",
            access_log=False,
            log_level="warning",
        )
    )

    async def both() -> None:
        serving = asyncio.create_task(server.serve())
        # uvicorn offers no event for "started"; this polls only until it has.
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if serving.done():
            return await serving
        ops_serving = asyncio.create_task(ops.serve())
        try:
            await serving
        finally:
            ops.should_exit = True
            await ops_serving

    with asyncio.Runner(loop_factory=main.get_loop_factory()) as runner:
        runner.run(both())
