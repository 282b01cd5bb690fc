"""The state directory: versioned RocksDB databases and a `current` symlink naming the live one.

A rebuild writes a new version beside the live one and swaps the symlink atomically; a process
that already has a version open keeps it (RocksDB's LOCK is per version, so they never clash).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

CURRENT = "current"


def new_version(state_dir: Path) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    version = state_dir / f"view-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    version.mkdir()
    return version


def current_version(state_dir: Path) -> Path:
    """The live version, resolved once: a later swap does not move an open database."""
    link = state_dir / CURRENT
    if not link.is_symlink():
        swap(state_dir, new_version(state_dir))
    return link.resolve(strict=True)


def swap(state_dir: Path, version: Path) -> None:
    """Point `current` at `version` in one rename; readers see the old or the new, never neither."""
    link = state_dir / CURRENT
    staged = state_dir / f".{CURRENT}-{uuid.uuid4().hex[:8]}"
    staged.symlink_to(version.name)
    os.replace(staged, link)
    fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
