"""How either service ends itself when a part of it has failed for good (a fatal Kafka error, a
dead consumer or membership thread): one CRITICAL line, then an orderly shutdown through SIGTERM,
and a hard exit if that has not finished within a bound. The exit status tells a supervisor to
restart it. A process must never stay half alive.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

log = logging.getLogger(__name__)

EXIT_FAILED: Final = 70  # EX_SOFTWARE: a supervisor restarts the service
# Ends the process after a failure it cannot recover from; takes the reason (already logged).
Terminate = Callable[[str], None]
# Set when the process sends itself SIGTERM for a failure: the server then returns once shut
# down instead of raising the signal again, so that `main` exits with EXIT_FAILED.
ENDING_ITSELF: Final = threading.Event()


class _State(Protocol):
    failure: object


class _App(Protocol):
    @property
    def state(self) -> _State: ...


def terminator(grace_s: float) -> Terminate:
    """SIGTERM to this process (uvicorn shuts down and `main` returns exit_status), and a hard
    exit with EXIT_FAILED if that has not happened within `grace_s`. The timer is a daemon: it
    never keeps a process alive that has finished shutting down."""

    def terminate(reason: str) -> None:
        del reason  # logged by end_on_failure
        timer = threading.Timer(grace_s, os._exit, (EXIT_FAILED,))
        timer.daemon = True
        timer.start()
        ENDING_ITSELF.set()
        os.kill(os.getpid(), signal.SIGTERM)

    return terminate


async def end_on_failure(app: _App, failed: Awaitable[str], terminate: Terminate) -> None:
    """Wait for a failure for good, record it on the app (so health answers 503 and the exit
    status says so), say it once at CRITICAL, and end the process."""
    reason = await failed
    app.state.failure = reason
    log.critical("exiting: %s", reason)
    terminate(reason)


def exit_status(app: _App) -> int:
    """What `python -m <service>` returns once uvicorn has stopped."""
    return EXIT_FAILED if app.state.failure is not None else 0
