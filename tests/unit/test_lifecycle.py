"""How a service that failed for good ends (shared.lifecycle), each case in a process of its own:
SIGTERM first, exit 70 if the orderly shutdown has not ended it within the bound, and never kept
alive by the bound once it has."""

from __future__ import annotations

import subprocess
import sys
import time

from shared.lifecycle import EXIT_FAILED

# A process whose SIGTERM handler only notes the signal, as uvicorn's does, then asks to end.
PRELUDE = """\
import signal, time
from shared.lifecycle import terminator
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
terminator({grace_s})("a part failed for good")
while not stopping:
    time.sleep(0.01)
"""


def run(grace_s: float, shutdown: str) -> tuple[int, float]:
    """The exit status and run time of a process whose orderly shutdown is `shutdown`."""
    program = PRELUDE.format(grace_s=grace_s) + shutdown
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", program], timeout=60, check=False)
    return done.returncode, time.monotonic() - started


def test_a_shutdown_that_hangs_is_ended_with_exit_70_once_the_grace_is_over() -> None:
    status, took = run(0.5, "time.sleep(30)\n")
    assert status == EXIT_FAILED
    assert took < 20


def test_a_shutdown_that_finishes_is_never_held_up_by_the_grace() -> None:
    status, took = run(30, "raise SystemExit(0)\n")
    assert status == 0
    assert took < 20
