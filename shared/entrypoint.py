"""What both services do before serving: read settings, or exit 2 naming
every variable that is wrong; then serve the API and the ops listener side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import threading
from collections.abc import Callable, Generator
from typing import Any, Final, TypeVar

import uvicorn
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from starlette.types import ASGIApp

from shared.access import OPS_PATHS, OpsListener
from shared.lifecycle import ENDING_ITSELF

SETTINGS_EXIT_CODE = 2
OPS_SWITCH_INTERVAL_S = 0.001
# Connections the kernel holds for the API listener until the loop accepts them (uvicorn's
# default is 2048; the kernel caps it at net.core.somaxconn). A burst beyond it is not refused:
# its SYNs are dropped and retried after 1, 3, 7 s, a wait no cap of ours would show.
LISTEN_BACKLOG: Final = 4096
# How often the server is checked for a SIGTERM, to start draining.
DRAIN_POLL_S: Final = 0.05

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


# A batch of the query side's consumer builds hundreds of thousands of short-lived, acyclic
# containers (decoded views) that reference counting frees; at the default gen-0 threshold (700)
# the collector keeps re-walking the live ones mid-batch. Rarer young collections keep cycles
# collected at a fraction of the cost (over 300k events: 14.1-14.9k events/s pausing it per
# batch, 15.7-16.9k with these).
GC_THRESHOLDS = (50_000, 20, 100)


def settle_heap() -> None:
    """Move everything alive after start-up out of the garbage collector's sight, and make its
    young collections rarer. Called by a `__main__` only, never by a library: it tunes the whole
    process.

    Without the freeze each full collection walks every module object ever imported (pydantic,
    fastapi, ...), which halved ingest throughput.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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


class _Server(uvicorn.Server):
    """uvicorn's server, except after a SIGTERM the process sent itself (lifecycle.terminator:
    a failure for good): uvicorn raises a captured signal again once it has shut down, which
    would end the process by the signal; this lets `main` return EXIT_FAILED instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            if ENDING_ITSELF.is_set():
                self._captured_signals.clear()


def serve_with_ops(
    app: ASGIApp,
    ops_host: str,
    ops_port: int,
    ops_paths: tuple[str, ...] = OPS_PATHS,
    *,
    grace_s: float,
    on_drain: Callable[[], None] | None = None,
    **options: Any,
) -> None:
    """Serve `app` with uvicorn `options` and, once it has started, its `ops_paths` on the ops
    listener `ops_host:ops_port`: on a thread and event loop of its own, without a lifespan of
    its own or a concurrency limit, so that a saturated API still answers probes and scrapes.

    On SIGTERM, `on_drain` is called at once (on the app's loop: long answers such as streams
    end), and requests still running after `grace_s` are cancelled, so that the lifespan's
    shutdown (a clean leave) always comes within the grace."""
    # log_config=None: uvicorn's loggers go through the root logger's handler (shared.logs).
    main = uvicorn.Config(
        app,
        **{
            "backlog": LISTEN_BACKLOG,
            "log_config": None,
            "timeout_graceful_shutdown": grace_s,
            **options,
        },
    )
    server = _Server(main)
    # Off the main thread, uvicorn leaves the signals to the main server.
    ops = uvicorn.Server(
        uvicorn.Config(
            OpsListener(app, ops_paths),
            host=ops_host,
            port=ops_port,
            lifespan="off",
            access_log=False,
            log_level="warning",
            log_config=None,
        )
    )
    ops_thread = threading.Thread(target=ops.run, name="ops-listener", daemon=True)
    # Each time the ops thread comes back from I/O it waits for the GIL up to the switch interval
    # (5 ms by default), a few times per request while the API's loop is busy. 1 ms keeps a probe
    # well under 100 ms then; it costs nothing while the ops thread is idle.
    sys.setswitchinterval(OPS_SWITCH_INTERVAL_S)

    async def drain() -> None:
        # uvicorn offers no event for "exiting" either: polled, as sse-starlette does.
        while not server.should_exit:  # noqa: ASYNC110
            await asyncio.sleep(DRAIN_POLL_S)
        if on_drain is not None:
            on_drain()

    async def both() -> None:
        serving = asyncio.create_task(server.serve())
        # uvicorn offers no event for "started"; this polls only until it has.
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if not serving.done():
            ops_thread.start()
        draining = asyncio.create_task(drain())
        try:
            await serving
        finally:
            draining.cancel()
            ops.should_exit = True

    with asyncio.Runner(loop_factory=main.get_loop_factory()) as runner:
        runner.run(both())
    if ops_thread.is_alive():
        ops_thread.join(10)
