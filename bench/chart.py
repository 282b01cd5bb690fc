"""The benchmark figures as one PNG: each measured value beside its target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PANELS = (
    ("Throughput against its limit (ratio)", ("ingest_ratio", "commands_ratio", "queries_ratio")),
    ("Ingest against itself (ratio)", ("hot_users_ratio", "ingest_late_vs_early_ratio")),
    ("Latency (ms)", ("commands_half_load_p99_ms", "ryw_p50_ms", "ryw_p99_ms")),
    ("Restart (s) and memory (MB / 100)", ("restart_to_ready_s", "ingest_peak_rss_mb")),
    (
        "A user with 100,000 orders (ms, KB, ratio)",
        ("big_user_items_p99_ms", "big_user_items_body_bytes", "big_user_event_cost_ratio"),
    ),
)
# Figures drawn in other units than they are measured in, to share a panel's scale.
SCALES = {"ingest_peak_rss_mb": 100.0, "big_user_items_body_bytes": 1024.0}


def draw(results: dict[str, Any], path: Path) -> None:
    targets = results["targets"]
    figure, axes = plt.subplots(1, len(PANELS), figsize=(24, 4.5))
    for axis, (title, names) in zip(axes, PANELS, strict=True):
        scale = [SCALES.get(name, 1.0) for name in names]
        pairs = list(zip(names, scale, strict=True))
        values = [targets[n]["value"] / s for n, s in pairs]
        limits = [float(targets[n]["target"].split()[1]) / s for n, s in pairs]
        colours = ["#2e7d32" if targets[n]["met"] else "#c62828" for n in names]
        positions = range(len(names))
        axis.bar(positions, values, color=colours, width=0.6, label="measured")
        axis.scatter(positions, limits, marker="_", s=900, color="black", zorder=3, label="target")
        for x, value in zip(positions, values, strict=True):
            axis.annotate(f"{value:.3g}", (x, value), ha="center", va="bottom", fontsize=9)
        axis.set_xticks(
            list(positions), [n.replace("_", " ") for n in names], fontsize=8, rotation=12
        )
        axis.set_title(title, fontsize=10)
    axes[0].legend(loc="upper left", fontsize=8)
    machine = results["machine"]
    figure.suptitle(
        f"orders-cqrs benchmarks, {machine['date']}, {machine['cpus']} CPUs, "
        f"Kafka {machine['kafka']} (green: target met)",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
