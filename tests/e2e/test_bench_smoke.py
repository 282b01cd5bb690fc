"""The benchmark harness at tiny sizes, so that `make bench` cannot rot between full runs.

It checks that every figure is produced and written; it asserts no speed (that is the full
benchmark's job, never a test's).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import workload
from bench.run import MEANINGS, TARGETS
from shared.events import READABLE_VERSIONS


def test_the_fast_workload_writes_what_the_event_model_writes() -> None:
    # Both placed_at shapes the model writes: with and without microseconds; both versions.
    times = (datetime(2026, 5, 4, 3, 2, 1, 123456, UTC), datetime(2026, 5, 4, tzinfo=UTC))
    for placed_at, version in itertools.product(times, READABLE_VERSIONS):
        for users, prefix in ((20, "bench"), (1, "big"), (3000, "more")):
            drawn = {"seed": 3, "prefix": prefix, "placed_at": placed_at, "version": version}
            fast = list(workload.order_values(3000, users, **drawn))  # type: ignore[arg-type]
            modelled = workload.modelled_values(3000, users, **drawn)  # type: ignore[arg-type]
            assert fast == list(modelled)


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
    assert set(TARGETS) <= set(MEANINGS)
    # Differences of two moments: at tiny sizes they may come out at or below zero (the query
    # service can apply an order and send its delta before the command service's 201 is read).
    differences = {"forwarding_added_p50_ms", "streams_delta_p50_ms"}
    for name in set(MEANINGS) - differences:
        assert results[name] > 0, name
    for name in differences:
        assert isinstance(results[name], float), name
    assert results["ingest"]["events"] == 2_000
    assert results["commands"]["max_throughput"]["requests"] > 0
    assert results["ryw"]["samples"] > 0
    assert results["hot_users"]["events"] == 2_000
    assert results["ingest"]["early_events_per_s"] > 0
    assert results["big_user"]["orders"] == 1_000
    assert results["big_user"]["items"]["requests"] > 0
    assert results["big_user"]["event_cost"]["samples"] == 100
    forwarding = results["forwarding"]
    assert forwarding["local"]["served_by"] == [forwarding["entry"]]
    assert forwarding["entry"] not in forwarding["forwarded"]["served_by"]
    assert forwarding["local"]["requests"] > 0
    assert forwarding["forwarded"]["requests"] > 0
    assert results["ryw_3_instances"]["instances"] == 3
    assert results["ryw_3_instances"]["forwarded_share"] > 0
    assert results["ingest_by_instances"]["events"] == 2_000
    assert results["new_instance"]["events_folded"] > 0
    assert (out / "smoke.png").stat().st_size > 10_000
    summary = (out / "smoke.md").read_text()
    for name in MEANINGS:
        assert name.replace("_", " ") in summary, name
        assert name in done.stdout
