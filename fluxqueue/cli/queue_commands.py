"""Whole queues: ``info``, ``dead list|retry|purge`` and ``purge``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from fluxqueue.backends.base import BrokerStats, QueueStats
from fluxqueue.cli.options import broker_options, cli_errors, json_option, open_app, run
from fluxqueue.cli.output import ago, echo_json, echo_table, iso
from fluxqueue.handle import Priority

if TYPE_CHECKING:
    from fluxqueue.app import FluxQueue

__all__ = ["dead_group", "info_command", "purge_command"]


def _destructive(
    ctx: click.Context, broker_url: str | None, redis_url: str | None, yes: bool, what: str
) -> FluxQueue:
    """Ask before deleting ``what``, unless --yes or not at a terminal (scripts); then open
    the app."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete {what}?", abort=True)
    return open_app(ctx, broker_url, redis_url)


def _report(as_json: bool, queue: str, key: str, count: int, text: str) -> None:
    """How many things a destructive command removed, for people or scripts."""
    if as_json:
        echo_json({"queue": queue, key: count})
    else:
        click.echo(text)


def _queue_option(fn: Any) -> Any:
    return click.option("-q", "--queue", default="default", show_default=True, help="The queue.")(
        fn
    )


def shown_queues(stats: BrokerStats, asked: Sequence[str]) -> list[QueueStats]:
    """The queues ``info`` shows: those asked for by name, each once, even when empty;
    otherwise those holding anything. A drained queue is then shown the same way on every
    backend (one forgets an empty queue, another remembers it)."""
    if asked:
        by_name = {q.name: q for q in stats.queues}
        return [by_name.get(name) or QueueStats(name) for name in dict.fromkeys(asked)]
    return [q for q in stats.queues if q.total_ready or q.scheduled or q.running or q.dead]


@click.command("info")
@click.option("-q", "--queue", "queues", multiple=True, help="Only this queue (repeatable).")
@broker_options
@json_option
@click.pass_context
@cli_errors
def info_command(
    ctx: click.Context,
    queues: tuple[str, ...],
    broker_url: str | None,
    redis_url: str | None,
    as_json: bool,
) -> None:
    """Per queue: ready tasks by priority, scheduled, running, dead; and live workers."""
    app = open_app(ctx, broker_url, redis_url)
    stats: BrokerStats = run(app, app.admin.stats(list(queues) or None))
    shown = shown_queues(stats, queues)
    if as_json:
        echo_json(
            {
                "queues": [
                    {
                        "name": q.name,
                        "ready": {p.name.lower(): q.ready.get(int(p), 0) for p in Priority},
                        "ready_total": q.total_ready,
                        "scheduled": q.scheduled,
                        "running": q.running,
                        "dead": q.dead,
                    }
                    for q in shown
                ],
                "workers": [w.to_dict() for w in stats.workers],
            }
        )
        return
    headers = ["QUEUE", *(p.name for p in Priority), "SCHEDULED", "RUNNING", "DEAD"]
    rows = [
        [q.name, *(q.ready.get(int(p), 0) for p in Priority), q.scheduled, q.running, q.dead]
        for q in shown
    ]
    echo_table(headers, rows, empty="no tasks in any queue")
    click.echo()
    echo_table(
        ["WORKER", "PID", "QUEUES", "CONCURRENCY", "STARTED", "LAST SEEN"],
        [
            [w.id, w.pid, ",".join(w.queues), w.concurrency, iso(w.started_at), ago(w.last_seen)]
            for w in stats.workers
        ],
        empty="no live workers",
    )


@click.command("purge")
@click.argument("queue")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@broker_options
@json_option
@click.pass_context
@cli_errors
def purge_command(
    ctx: click.Context,
    queue: str,
    yes: bool,
    broker_url: str | None,
    redis_url: str | None,
    as_json: bool,
) -> None:
    """Delete every waiting (ready and scheduled) task of QUEUE. Running ones are kept."""
    app = _destructive(ctx, broker_url, redis_url, yes, f"every waiting task of queue {queue!r}")
    count = run(app, app.admin.purge(queue))
    _report(as_json, queue, "purged", count, f"purged {count} task(s) from queue {queue}")


@click.group("dead")
def dead_group() -> None:
    """Dead letters: tasks that failed for good or could not be decoded."""


@dead_group.command("list")
@_queue_option
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@broker_options
@json_option
@click.pass_context
@cli_errors
def dead_list(
    ctx: click.Context,
    queue: str,
    limit: int,
    broker_url: str | None,
    redis_url: str | None,
    as_json: bool,
) -> None:
    """List a queue's dead letters, oldest first."""
    app = open_app(ctx, broker_url, redis_url)
    letters = run(app, app.admin.dead_letters(queue, limit))
    if as_json:
        echo_json(
            [
                {
                    "id": d.task_id,
                    "queue": d.queue,
                    "task": d.task,
                    "attempts": d.attempts,
                    "reason": d.reason,
                    "failed_at": d.failed_at,
                }
                for d in letters
            ]
        )
        return
    echo_table(
        ["ID", "TASK", "ATTEMPTS", "FAILED AT", "REASON"],
        [[d.task_id, d.task, d.attempts, iso(d.failed_at), d.reason] for d in letters],
        empty=f"no dead letters in queue {queue}",
    )


@dead_group.command("retry")
@click.argument("task_ids", nargs=-1)
@_queue_option
@broker_options
@json_option
@click.pass_context
@cli_errors
def dead_retry(
    ctx: click.Context,
    task_ids: tuple[str, ...],
    queue: str,
    broker_url: str | None,
    redis_url: str | None,
    as_json: bool,
) -> None:
    """Enqueue dead letters again (all of the queue's, or the TASK_IDS given)."""
    app = open_app(ctx, broker_url, redis_url)
    retried, skipped = run(app, app.admin.retry_dead(queue, list(task_ids) or None))
    if as_json:
        echo_json({"queue": queue, "retried": retried, "skipped": skipped})
        return
    click.echo(f"retried {retried} dead letter(s) of queue {queue}")
    if skipped:
        click.echo(f"skipped {skipped} that cannot be decoded (they stay dead)")


@dead_group.command("purge")
@_queue_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@broker_options
@json_option
@click.pass_context
@cli_errors
def dead_purge(
    ctx: click.Context,
    queue: str,
    yes: bool,
    broker_url: str | None,
    redis_url: str | None,
    as_json: bool,
) -> None:
    """Delete a queue's dead letters."""
    app = _destructive(ctx, broker_url, redis_url, yes, f"every dead letter of queue {queue!r}")
    count = run(app, app.admin.purge_dead(queue))
    _report(as_json, queue, "removed", count, f"removed {count} dead letter(s) from queue {queue}")
