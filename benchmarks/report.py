"""Turns the results of run.py into a markdown table (with ratios), JSON and a chart."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: workload -> (column title, unit, True when higher is better)
COLUMNS: dict[str, tuple[str, str, bool]] = {
    "enqueue_one": ("enqueue one at a time", "tasks/s", True),
    "enqueue_bulk": ("bulk enqueue", "tasks/s", True),
    "drain_noop": ("drain no-op (def)", "tasks/s", True),
    "drain_async_noop": ("drain no-op (async def)", "tasks/s", True),
    "drain_async_sleep": ("drain async sleep 10 ms", "tasks/s", True),
    "drain_sync_sleep": ("drain sync sleep 10 ms", "tasks/s", True),
    "latency_p50": ("latency p50", "ms", False),
    "latency_p99": ("latency p99", "ms", False),
    "idle_rss": ("idle RSS", "MB", False),
}


#: run.py's bare socket client: not a library, so never the best peer; its ratio row says
#: how far above the best peer anything could get here.
FLOOR = "floor"


def _is_peer(name: str) -> bool:
    return not name.startswith("fluxqueue") and name != FLOOR


def _median(entry: dict[str, Any], key: str) -> Any:
    return entry.get("median", {}).get(key)


def _in_round(i: int) -> Callable[[dict[str, Any], str], Any]:
    """What a library measured for a workload in round ``i`` (rounds are interleaved, so
    the libraries' round ``i`` ran in the same spell of the machine)."""

    def pick(entry: dict[str, Any], key: str) -> Any:
        samples = entry.get("samples", {}).get(key, [])
        return samples[i] if i < len(samples) else None

    return pick


def best_peers(
    results: dict[str, Any], pick: Callable[[dict[str, Any], str], Any] = _median
) -> dict[str, tuple[str, float] | None]:
    """The best peer of each workload, by ``pick`` (the medians, or one round's samples)."""
    best: dict[str, tuple[str, float] | None] = {}
    for key, (_, _, higher) in COLUMNS.items():
        found: tuple[str, float] | None = None
        for name, entry in results["libraries"].items():
            value = pick(entry, key)
            if not _is_peer(name) or not isinstance(value, (int, float)):
                continue
            if found is None or (value > found[1] if higher else value < found[1]):
                found = (name, value)
        best[key] = found
    return best


def _times(key: str, value: Any, best: tuple[str, Any] | None) -> float | None:
    """How many times better than ``best`` (>1 is better, whatever the unit)."""
    if best is None or not isinstance(value, (int, float)) or not value:
        return None
    if not isinstance(best[1], (int, float)) or not best[1]:
        return None
    return float(value / best[1] if COLUMNS[key][2] else best[1] / value)


def ratio(key: str, value: Any, best: tuple[str, Any] | None) -> str:
    r = _times(key, value, best)
    return "-" if r is None else f"{r:.2f}x"


def worst_round(results: dict[str, Any], name: str) -> list[str]:
    """Per workload, ``name``'s lowest ratio to the best peer of the same round."""
    entry = results["libraries"][name]
    rounds = [best_peers(results, _in_round(i)) for i in range(results.get("repeat", 0))]
    cells = []
    for key in COLUMNS:
        values = [_times(key, _in_round(i)(entry, key), best[key]) for i, best in enumerate(rounds)]
        numbers = [v for v in values if v is not None]
        cells.append(f"{min(numbers):.2f}x" if numbers else "-")
    return cells


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value < 10 else f"{value:.1f}"
    return "n/a" if value is None else str(value).replace("|", "/")[:40]


def render_table(results: dict[str, Any]) -> str:
    head = ["library", *(f"{t} ({u})" for t, u, _ in COLUMNS.values())]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    libs = results["libraries"]
    for name, entry in libs.items():
        if "error" in entry:
            lines.append(f"| {name} | " + " | ".join([entry["error"]] * len(COLUMNS)) + " |")
            continue
        med = entry["median"]
        lines.append(f"| {name} | " + " | ".join(_cell(med.get(k)) for k in COLUMNS) + " |")
    best = best_peers(results)
    cells = [f"{_cell(b[1])} ({b[0]})" if b else "-" for b in best.values()]
    lines.append("| **best peer** | " + " | ".join(cells) + " |")
    for name, entry in libs.items():
        if _is_peer(name) or "median" not in entry:
            continue
        med = entry["median"]
        cells = [ratio(k, med.get(k), best[k]) for k in COLUMNS]
        lines.append(f"| **{name} vs best peer** | " + " | ".join(cells) + " |")
        if results.get("repeat", 1) > 1:
            cells = worst_round(results, name)
            lines.append(f"| *{name} vs best peer, worst round* | " + " | ".join(cells) + " |")
    floor = libs.get(FLOOR, {}).get("median")
    if floor:
        for name, entry in libs.items():
            if name.startswith("fluxqueue") and "median" in entry:
                med = entry["median"]
                cells = [ratio(k, med.get(k), (FLOOR, floor.get(k))) for k in COLUMNS]
                lines.append(f"| *{name} vs floor* | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(results: dict[str, Any], prefix: Path, chart: tuple[Path, Path] | None) -> None:
    prefix.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    versions = "; ".join(
        f"{name}: " + ", ".join(f"{k} {v}" for k, v in e.get("versions", {}).items())
        for name, e in results["libraries"].items()
    )
    m = results["machine"]
    text = (
        f"Command: `{results['command']}` ({results['started']}; {results['repeat']} round(s), "
        f"median; counts {results['counts']}; concurrency {results['concurrency']})\n\n"
        f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}, "
        f"redis-server {m['redis_server']}\n\nVersions: {versions}\n\n"
        + render_table(results)
        + "\n"
    )
    prefix.with_suffix(".md").write_text(text)
    if chart is not None:
        python, path = chart
        subprocess.run(
            [str(python), str(Path(__file__).with_name("chart.py")),
             str(prefix.with_suffix(".json")), str(path)],
            check=False,
        )  # fmt: skip
