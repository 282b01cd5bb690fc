"""The benchmark figures as one PNG: each measured value beside its target, if it has one."""

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
    (
        "Through one of several instances (ms)",
        (
            "local_get_p99_ms",
            "forwarded_get_p99_ms",
            "forwarding_added_p50_ms",
            "ryw_3_instances_p99_ms",
        ),
    ),
    (
        "1 and 2 instances (k events/s, CPU s / 10k events, s)",
        (
            "ingest_1_instance_events_per_s",
            "ingest_2_instances_events_per_s",
            "cpu_s_per_1000_events_1",
            "cpu_s_per_1000_events_2",
            "new_instance_ready_s",
        ),
    ),
)
# Figures drawn in other units than they are measured in, to share a panel's scale.
SCALES = {
    "ingest_peak_rss_mb": 100.0,
    "big_user_items_body_bytes": 1024.0,
    "ingest_1_instance_events_per_s": 1000.0,
    "ingest_2_instances_events_per_s": 1000.0,
    "cpu_s_per_1000_events_1": 0.1,
    "cpu_s_per_1000_events_2": 0.1,
}
UNTARGETED = "#78909c"


def draw(results: dict[str, Any], path: Path) -> None:
    targets = results["targets"]
    figure, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 4.5))
    for axis, (title, names) in zip(axes, PANELS, strict=True):
        scale = [SCALES.get(name, 1.0) for name in names]
        pairs = list(zip(names, scale, strict=True))
        values = [results[n] / s for n, s in pairs]
        colours = [
            UNTARGETED if n not in targets else "#2e7d32" if targets[n]["met"] else "#c62828"
            for n in names
        ]
        positions = range(len(names))
        axis.bar(positions, values, color=colours, width=0.6, label="measured")
        limits = [
            (x, float(targets[n]["target"].split()[1]) / s)
            for x, (n, s) in enumerate(pairs)
            if n in targets
        ]
        if limits:
            axis.scatter(
                *zip(*limits, strict=True),
                marker="_",
                s=900,
                color="black",
                zorder=3,
                label="target",
            )
        for x, value in zip(positions, values, strict=True):
            axis.annotate(f"{value:.3g}", (x, value), ha="center", va="bottom", fontsize=9)
        axis.set_xticks(
            list(positions),
            [n.replace("_", " ") for n in names],
            fontsize=8,
            rotation=12 if len(names) <= 3 else 25,
            ha="right" if len(names) > 3 else "center",
        )
        axis.set_title(title, fontsize=10)
    axes[0].legend(loc="upper left", fontsize=8)
    machine = results["machine"]
    figure.suptitle(
        f"orders-cqrs benchmarks, {machine['date']}, {machine['cpus']} CPUs, "
        f"Kafka {machine['kafka']} (green: target met, red: missed, grey: no target)",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
