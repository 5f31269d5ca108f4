"""How commands print: aligned plain-text tables for people, JSON for scripts."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import click

__all__ = ["ago", "echo_json", "echo_table", "iso", "to_jsonable"]


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str = "") -> None:
    """Columns padded to their widest cell; the last column is not padded."""
    if not rows and empty:
        click.echo(empty)
        return
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        line = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row))
        click.echo(line.rstrip())


def to_jsonable(value: Any) -> Any:
    """Dates as ISO 8601 strings; anything JSON cannot hold as its ``repr``."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def iso(value: datetime | float | None) -> str | None:
    """A timestamp in local time, to the second."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, tz=timezone.utc)
    return value.astimezone().isoformat(timespec="seconds")


def ago(timestamp: float, now: float | None = None) -> str:
    seconds = max(0.0, (time.time() if now is None else now) - timestamp)
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"
