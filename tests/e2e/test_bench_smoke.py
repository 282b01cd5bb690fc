"""The benchmark harness at tiny sizes, so that `make bench` cannot rot between full runs.

It checks that every figure is produced and written; it asserts no speed (that is the full
benchmark's job, never a test's).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.run import TARGETS


def test_every_benchmark_runs_and_writes_its_figures(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--smoke",
            "--seconds",
            "1",
            "--bootstrap",
            kafka_bootstrap,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "smoke.json").read_text())
    assert set(results["targets"]) == set(TARGETS)
    for name in TARGETS:
        assert results[name] > 0, name
    assert results["ingest"]["events"] == 2_000
    assert results["commands"]["max_throughput"]["requests"] > 0
    assert results["ryw"]["samples"] > 0
    assert (out / "smoke.png").stat().st_size > 10_000
    for name in TARGETS:
        assert name in done.stdout
