"""Draws docs/benchmarks.png from results.json (run with the chart virtualenv's python)."""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from report import FLOOR

#: Panels where the floor row (run.py's bare client) is drawn: in the others it does no
#: queue's work (bulk and drain without envelope or acks) and its bar would flatten the rest.
WITH_FLOOR = {"enqueue_one", "latency_p50", "idle_rss"}

PANELS = [
    ("enqueue_one", "enqueue one at a time (tasks/s)"),
    ("enqueue_bulk", "bulk enqueue (tasks/s)"),
    ("drain_noop", "drain no-op (tasks/s)"),
    ("drain_async_sleep", "drain async sleep 10 ms (tasks/s)"),
    ("latency_p50", "enqueue-to-start p50 (ms, lower is better)"),
    ("idle_rss", "idle worker RSS (MB, lower is better)"),
]


def main() -> None:
    with open(sys.argv[1]) as f:
        results = json.load(f)
    libs = results["libraries"]
    fig, axes = plt.subplots(3, 2, figsize=(12, 12))
    for ax, (key, title) in zip(axes.flat, PANELS, strict=False):
        names, values = [], []
        for name, entry in libs.items():
            value = entry.get("median", {}).get(key)
            if name == FLOOR and key not in WITH_FLOOR:
                continue
            if isinstance(value, (int, float)):
                names.append(name)
                values.append(value)
        colors = [
            "#d62728" if n.startswith("fluxqueue") else "#1f77b4" if n == FLOOR else "#7f7f7f"
            for n in names
        ]
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        if key.startswith("latency"):
            ax.set_xscale("log")  # RQ and arq poll: hundreds of ms beside one or two
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,.0f}" if v >= 100 else f" {v:.2f}", va="center", fontsize=7)
    fig.suptitle(f"{results['command']} - {results['machine']['cpu']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=80)


if __name__ == "__main__":
    main()
