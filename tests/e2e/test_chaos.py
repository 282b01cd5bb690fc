"""The chaos run in a minute: every fault kind at least once, and no acknowledged order lost or
counted twice (`make chaos` runs it for 10 minutes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.faults import KINDS
from devtools.processes import REPO

pytestmark = pytest.mark.kafka


@pytest.mark.timeout(400)
def test_a_minute_of_chaos_loses_and_doubles_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "chaos"
    run = subprocess.run(
        [sys.executable, "-m", "chaos", "--seconds", "60", "--seed", "1", "--workdir", workdir],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )
    output = run.stdout + run.stderr[-5000:]
    assert run.returncode == 0, output
    report = json.loads((workdir / "report.json").read_text())

    assert report["ok"] is True
    assert all(report["faults"][kind] >= 1 for kind in KINDS), report["faults"]
    assert report["orders_acknowledged"] >= 400, output  # 10 a second for a minute
    assert report["orders_read_back"] == report["orders_acknowledged"]
    assert report["orders_retried"] > 0  # the faults did bite
    verdict = report["verdict"]
    for failure in ("lost", "lost_in_kafka", "duplicates", "invented", "mismatched_users"):
        assert verdict[failure] == [], (failure, verdict[failure])
    assert verdict["not_dead_lettered"] == []
    assert report["bad_records_in_log"] >= 2
    assert report["events_in_log"] >= report["orders_acknowledged"]
    assert report["processes_left"] == []
    assert report["unexpected"] == []
