"""One task at a time: ``enqueue``, ``status``, ``result`` and ``abort``."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from fluxqueue._url import mask_url
from fluxqueue.cli.options import (
    EXIT_ERROR,
    EXIT_PENDING,
    CliError,
    accept_option,
    broker_options,
    cli_errors,
    json_option,
    open_app,
    run,
    tasks_module_option,
)
from fluxqueue.cli.output import echo_json, iso, to_jsonable
from fluxqueue.handle import FINAL_STATUSES, Priority, Status, TaskResult

if TYPE_CHECKING:
    from fluxqueue.app import FluxQueue

__all__ = ["abort_command", "enqueue_command", "result_command", "status_command"]

PRIORITIES = [p.name.lower() for p in Priority] + [str(int(p)) for p in Priority]


def _json_arg(value: str | None, what: str, kind: type) -> Any:
    if value is None:
        return kind()
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc})", param_hint=what) from None
    if not isinstance(parsed, kind):
        expected = "a JSON array" if kind is list else "a JSON object"
        raise click.BadParameter(f"must be {expected}, got {value!r}", param_hint=what)
    return parsed


@click.command("enqueue")
@click.argument("name")
@click.option("--args", "args_json", metavar="JSON", help="Positional arguments: '[1, \"a\"]'.")
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments: '{\"x\": 1}'.")
@click.option("-q", "--queue", help="Queue (default: the task's own, else default).")
@click.option("--delay", type=click.FloatRange(min=0), help="Run no sooner than in S seconds.")
@click.option(
    "--priority",
    type=click.Choice(PRIORITIES, case_sensitive=False),
    help="critical, high, normal or low (or 0-3).",
)
@click.option("--task-id", help="Use this id instead of a new one.")
@tasks_module_option("Import the tasks so that their app, queue and options apply.")
@broker_options
@json_option
@click.pass_context
@cli_errors
def enqueue_command(
    ctx: click.Context,
    name: str,
    args_json: str | None,
    kwargs_json: str | None,
    queue: str | None,
    delay: float | None,
    priority: str | None,
    task_id: str | None,
    module_paths: tuple[str, ...],
    broker_url: str | None,
    redis_url: str | None,
    as_json: bool,
) -> None:
    """Enqueue task NAME with JSON arguments and print its id.

    \b
      fluxqueue enqueue send-welcome-email --args '[42, "ada@example.com"]'
      fluxqueue enqueue resize --kwargs '{"image_id": 7}' -q images --delay 30
    """
    args = _json_arg(args_json, "--args", list)
    kwargs = _json_arg(kwargs_json, "--kwargs", dict)
    app = open_app(ctx, broker_url, redis_url, module_paths=module_paths)
    if not app.broker.persistent:  # as `start -w 2` refuses it: the task would vanish
        raise CliError(
            f"{mask_url(app.broker.url)} is private to one process: a task enqueued by this "
            "command would vanish when it exits; give a broker a worker shares, e.g. "
            "-b sqlite:///fluxqueue.db or -b redis://127.0.0.1:6379/0"
        )
    sender = app.named(name).options(
        queue=queue,
        delay=delay,
        priority=None if priority is None else _priority(priority),
        task_id=task_id,
    )
    message = sender.message(*args, **kwargs)
    run(app, app.aenqueue_many([message]))
    if as_json:
        echo_json({"id": message.id, "task": message.task, "queue": message.queue})
    else:
        click.echo(message.id)


def _priority(value: str) -> Priority | int:
    return int(value) if value.isdigit() else Priority.coerce(value)


async def _info(app: FluxQueue, task_id: str, wait: float | None = None) -> TaskResult | None:
    broker = app.broker
    if wait:
        state = await broker.wait_state(task_id, FINAL_STATUSES, wait)
    else:
        state = await broker.get_state(task_id)
    if state is None:
        return None
    info = TaskResult.from_state(task_id, state, app)
    info.outputs = app.codec.decode_outputs(await broker.get_outputs(task_id))
    return info


def _unknown(task_id: str) -> CliError:
    return CliError(
        f"task {task_id} is unknown: never enqueued on this broker, or its record has expired"
    )


def _as_dict(info: TaskResult) -> dict[str, Any]:
    data = asdict(info)
    data["status"] = info.status.value
    return data


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


@click.command("status")
@click.argument("task_id")
@accept_option
@broker_options
@json_option
@click.pass_context
@cli_errors
def status_command(
    ctx: click.Context,
    task_id: str,
    accept: tuple[str, ...],
    broker_url: str | None,
    redis_url: str | None,
    as_json: bool,
) -> None:
    """Show what is known about task TASK_ID: status, times, attempts, error."""
    app = open_app(ctx, broker_url, redis_url, accept=accept)
    info = run(app, _info(app, task_id))
    if info is None:
        raise _unknown(task_id)
    if as_json:
        echo_json(_as_dict(info))
        return
    attempts = str(info.attempts)
    if info.max_retries is not None:
        attempts += f" (max retries {info.max_retries})"
    rows: list[tuple[str, Any]] = [
        ("id", info.task_id),
        ("task", info.name),
        ("queue", info.queue),
        ("status", info.status.value),
        ("attempts", attempts),
        ("enqueued", iso(info.enqueued_at)),
    ]
    if info.eta is not None:
        rows.append(("eta", iso(info.eta)))
    rows += [
        ("started", iso(info.started_at)),
        ("completed", iso(info.completed_at)),
        ("worker", info.worker),
    ]
    if info.error is not None:
        rows.append(("error", f"{info.error_type}: {info.error}"))
    if info.status is Status.SUCCESS:
        rows.append(("result", _show(info.result)))
    if info.outputs:
        rows.append(("outputs", _show(to_jsonable(info.outputs))))
    width = max(len(key) for key, _ in rows) + 1
    for key, value in rows:
        click.echo(f"{key + ':':<{width}} {'-' if value is None else value}")


@click.command("result")
@click.argument("task_id")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    metavar="S",
    help="Wait up to S seconds for the task to finish.",
)
@click.option("--traceback", "show_traceback", is_flag=True, help="Show a failure's traceback.")
@accept_option
@broker_options
@json_option
@click.pass_context
@cli_errors
def result_command(
    ctx: click.Context,
    task_id: str,
    wait: float | None,
    show_traceback: bool,
    accept: tuple[str, ...],
    broker_url: str | None,
    redis_url: str | None,
    as_json: bool,
) -> None:
    """Print the return value of task TASK_ID.

    Exit status: 0 with the value; 1 if the task failed, was aborted or is unknown; 3 if it
    has not finished (within --wait).
    """
    app = open_app(ctx, broker_url, redis_url, accept=accept)
    info = run(app, _info(app, task_id, wait))
    if info is None:
        raise _unknown(task_id)
    status = info.status
    if as_json:
        data: dict[str, Any] = {"id": task_id, "status": status.value}
        if status is Status.SUCCESS:
            data["result"] = info.result
        elif status is Status.FAILURE:
            data.update(error_type=info.error_type, error=info.error, traceback=info.traceback)
        echo_json(data)
    if status is Status.SUCCESS:
        if not as_json:
            click.echo(_show(info.result))
        return
    if status is Status.FAILURE:
        if show_traceback and info.traceback and not as_json:
            click.echo(info.traceback.rstrip(), err=True)
        raise CliError(f"task {task_id} failed: {info.error_type}: {info.error}", EXIT_ERROR)
    if status is Status.ABORTED:
        raise CliError(f"task {task_id} was aborted", EXIT_ERROR)
    within = f" within {wait:g}s" if wait else ""
    raise CliError(f"task {task_id} has not finished{within} (status {status})", EXIT_PENDING)


@click.command("abort")
@click.argument("task_id")
@broker_options
@json_option
@click.pass_context
@cli_errors
def abort_command(
    ctx: click.Context,
    task_id: str,
    broker_url: str | None,
    redis_url: str | None,
    as_json: bool,
) -> None:
    """Abort task TASK_ID: removed if it waits, stopped by its worker if it runs."""
    app = open_app(ctx, broker_url, redis_url)
    outcome = run(app, app.broker.abort(task_id))
    if as_json:
        echo_json({"id": task_id, "outcome": outcome})
    elif outcome == "aborted":
        click.echo(f"task {task_id} aborted (removed from its queue)")
    elif outcome == "requested":
        click.echo(f"abort requested: the worker running task {task_id} will stop it")
    if outcome == "missing":
        raise CliError(f"nothing to abort: task {task_id} is unknown or already finished")
