"""Options and error handling shared by every command.

Every flag has an environment variable (click's ``envvar=``); a flag given on the command
line wins over its variable. The broker can be named two ways, ``-b/--broker-url`` and the
``-r/--redis-url`` of FluxQueue's Rust worker; :func:`broker_url_from` decides which one applies.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from fluxqueue.cli.quiet_errors import one_line_errors
from fluxqueue.errors import FluxQueueError

if TYPE_CHECKING:
    from fluxqueue.app import FluxQueue

__all__ = [
    "EXIT_ERROR",
    "EXIT_PENDING",
    "CliError",
    "accept_option",
    "broker_options",
    "broker_url_from",
    "cli_errors",
    "closing",
    "json_option",
    "open_app",
    "run",
    "split_values",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes: 0 success, 1 error (task failed, unknown id, broker down), 2 usage (click),
#: 3 the task has not finished yet.
EXIT_ERROR = 1
EXIT_PENDING = 3


class CliError(click.ClickException):
    """One clear line on stderr and a non-zero exit status; never a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance


def cli_errors(fn: F) -> F:
    """Turn fluxqueue's own errors into :class:`CliError` (one line, exit status 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with one_line_errors():
                return fn(*args, **kwargs)
        except FluxQueueError as exc:  # StartError says which exit status it needs
            raise CliError(str(exc), exit_code=getattr(exc, "exit_code", EXIT_ERROR)) from None
        except OSError as exc:  # a file or socket the user named, e.g. a read-only database
            raise CliError(f"{type(exc).__name__}: {exc}") from None
        except KeyboardInterrupt:
            raise CliError("interrupted", exit_code=130) from None

    return wrapper  # type: ignore[return-value]


def broker_options(fn: F) -> F:
    """``-b/--broker-url`` and ``-r/--redis-url``, with their environment variables."""
    fn = click.option(
        "-r",
        "--redis-url",
        envvar="FLUXQUEUE_REDIS_URL",
        metavar="URL",
        help="Same as --broker-url (the flag of FluxQueue's Rust worker). "
        "[env: FLUXQUEUE_REDIS_URL]",
    )(fn)
    fn = click.option(
        "-b",
        "--broker-url",
        envvar="FLUXQUEUE_BROKER_URL",
        metavar="URL",
        help="Broker URL: redis://..., sqlite:///path.db, ... [env: FLUXQUEUE_BROKER_URL]",
    )(fn)
    return fn


def tasks_module_option(help: str) -> Callable[[F], F]:
    """``-t/--tasks-module-path``, shared by the commands that import the user's tasks."""
    return click.option(
        "-t",
        "--tasks-module-path",
        "module_paths",
        multiple=True,
        envvar="FLUXQUEUE_TASKS_MODULE_PATH",
        metavar="MODULE",
        help=f"{help} [env: FLUXQUEUE_TASKS_MODULE_PATH]",
    )


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(fn)


def broker_url_from(
    ctx: click.Context, broker_url: str | None, redis_url: str | None
) -> str | None:
    """The broker URL the user asked for, or None to keep the app's own.

    Flags win over variables; ``--broker-url`` and ``--redis-url`` together are an error,
    while the two variables together let ``FLUXQUEUE_BROKER_URL`` win.
    """
    from_flag = {
        name: value
        for name, value in (("--broker-url", broker_url), ("--redis-url", redis_url))
        if value
        and ctx.get_parameter_source(name[2:].replace("-", "_")) is ParameterSource.COMMANDLINE
    }
    if len(from_flag) == 2:
        raise CliError("give either --broker-url or --redis-url, not both")
    if from_flag:
        return next(iter(from_flag.values())).strip()
    value = broker_url or redis_url
    return value.strip() if value else None


def split_values(values: Iterable[str] | str | None) -> list[str]:
    """Repeated and comma-separated values as one list, in order, without duplicates."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    found: list[str] = []
    for value in values:
        for part in value.replace("\n", ",").split(","):
            part = part.strip()
            if part and part not in found:
                found.append(part)
    return found


def run(app: FluxQueue, coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine on a fresh event loop, then close the broker."""
    return asyncio.run(closing(app, coro))


def accept_option(fn: F) -> F:
    return click.option(
        "--accept",
        multiple=True,
        envvar="FLUXQUEUE_ACCEPT",
        metavar="NAMES",
        help="Serializers to decode results with besides json, e.g. pickle. "
        "[env: FLUXQUEUE_ACCEPT]",
    )(fn)


def open_app(
    ctx: click.Context,
    broker_url: str | None,
    redis_url: str | None,
    *,
    accept: Iterable[str] = (),
    module_paths: Iterable[str] = (),
) -> FluxQueue:
    """The app an admin command talks to.

    With tasks modules, the FluxQueue their tasks belong to (so its broker, serializer and
    task options apply); otherwise a FluxQueue for the broker URL (flag, variable or default).
    A broker given by flag or variable replaces the app's own.
    """
    from fluxqueue.app import FluxQueue

    url = broker_url_from(ctx, broker_url, redis_url)
    paths = split_values(module_paths)
    if paths:
        from fluxqueue.cli.discovery import discover

        app = discover(paths).app
        if url is not None and app.broker.url != url:
            app.use_broker(url)
    else:
        app = FluxQueue(url)
    names = split_values(accept)
    if names:
        app.set_accept([*app.accept, *names])
    return app


async def closing(app: FluxQueue, coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro``, then close the app's broker connections on this loop."""
    try:
        return await coro
    finally:
        try:
            await app.broker.close()
        except Exception:
            pass
