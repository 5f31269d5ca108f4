"""``fluxqueue start``: discover the tasks, check the broker, then serve.

With ``--workers 1`` (the default) the worker runs in this process. With more, this process
becomes a :class:`~fluxqueue.cli.supervisor.Supervisor` of that many worker processes.
Everything that can be wrong with the input (a module that does not import, no tasks for
the queue, an unknown scheme or serializer, a broker that does not answer) is checked here,
before any worker starts, and reported as one line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from fluxqueue import __version__
from fluxqueue._url import mask_url, scheme_of
from fluxqueue.cli.discovery import Discovery, discover
from fluxqueue.cli.logs import LOG_FORMATS, LOG_LEVELS, setup_logging
from fluxqueue.cli.options import (
    CliError,
    broker_options,
    broker_url_from,
    cli_errors,
    split_values,
    tasks_module_option,
)
from fluxqueue.cli.supervisor import (
    KILL_GRACE,
    SUPERVISOR_PID_ENV,
    WORKER_INDEX_ENV,
    Supervisor,
)
from fluxqueue.errors import FluxQueueError
from fluxqueue.worker import loop as worker_loop
from fluxqueue.worker.runtime import DEFAULT_CONCURRENCY, Worker

if TYPE_CHECKING:
    from fluxqueue.app import FluxQueue

__all__ = ["StartConfig", "start_command"]

log = logging.getLogger("fluxqueue.cli")

#: How long the start-up check waits for the broker to answer.
BROKER_CHECK_TIMEOUT = 10.0


@dataclass
class StartConfig:
    module_paths: list[str]
    queues: list[str]
    concurrency: int
    prefetch: int | None
    broker_url: str | None
    workers: int
    burst: bool
    shutdown_timeout: float
    accept: list[str]
    log_level: str
    log_format: str

    def child_argv(self) -> list[str]:
        """The command line of one supervised worker (the broker URL goes by environment,
        so that its password never shows in ``ps``)."""
        argv = [sys.executable, "-m", "fluxqueue.cli", "start", "-w", "1"]
        argv += ["-t", ",".join(self.module_paths), "-c", str(self.concurrency)]
        for queue in self.queues:
            argv += ["-q", queue]
        if self.prefetch is not None:
            argv += ["--prefetch", str(self.prefetch)]
        argv += ["--shutdown-timeout", repr(self.shutdown_timeout)]
        argv += ["--log-level", self.log_level, "--log-format", self.log_format]
        if self.accept:
            argv += ["--accept", ",".join(self.accept)]
        if self.burst:
            argv.append("--burst")
        return argv


@click.command("start")
@tasks_module_option(
    "Module holding the tasks: myapp.tasks or myapp/tasks.py. Repeatable, or comma-separated."
)
@click.option(
    "-q",
    "--queue",
    "queues",
    multiple=True,
    envvar="FLUXQUEUE_QUEUE",
    metavar="QUEUE",
    help="Queue to serve (default: default). Repeatable, or comma-separated. "
    "[env: FLUXQUEUE_QUEUE]",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    envvar="FLUXQUEUE_CONCURRENCY",
    help=f"Tasks run at once per process (default: {DEFAULT_CONCURRENCY}). "
    "[env: FLUXQUEUE_CONCURRENCY]",
)
@click.option(
    "--prefetch",
    type=click.IntRange(min=0),
    envvar="FLUXQUEUE_PREFETCH",
    help="Leased messages each process holds ready beyond the running ones (default: the "
    "concurrency; 0 for long tasks shared by several workers). [env: FLUXQUEUE_PREFETCH]",
)
@broker_options
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    envvar="FLUXQUEUE_WORKERS",
    help="Worker processes; more than 1 runs them under a supervisor. [env: FLUXQUEUE_WORKERS]",
)
@click.option(
    "--burst",
    is_flag=True,
    envvar="FLUXQUEUE_BURST",
    help="Run the ready tasks, then exit when the queues are empty. [env: FLUXQUEUE_BURST]",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    envvar="FLUXQUEUE_SHUTDOWN_TIMEOUT",
    help="Seconds running tasks get to finish after SIGTERM/SIGINT before they go back "
    "to their queue. [env: FLUXQUEUE_SHUTDOWN_TIMEOUT]",
)
@click.option(
    "--accept",
    multiple=True,
    envvar="FLUXQUEUE_ACCEPT",
    metavar="NAMES",
    help="Serializers to decode besides json and the app's own, e.g. pickle. Repeatable, "
    "or comma-separated. [env: FLUXQUEUE_ACCEPT]",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    envvar="FLUXQUEUE_LOG_LEVEL",
    help="[env: FLUXQUEUE_LOG_LEVEL]",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS, case_sensitive=False),
    default="text",
    show_default=True,
    envvar="FLUXQUEUE_LOG_FORMAT",
    help="text, or json (one object per line). [env: FLUXQUEUE_LOG_FORMAT]",
)
@click.pass_context
@cli_errors
def start_command(
    ctx: click.Context,
    module_paths: tuple[str, ...],
    queues: tuple[str, ...],
    concurrency: int | None,
    prefetch: int | None,
    broker_url: str | None,
    redis_url: str | None,
    workers: int,
    burst: bool,
    shutdown_timeout: float,
    accept: tuple[str, ...],
    log_level: str,
    log_format: str,
) -> None:
    """Start a worker: import the tasks modules and run their tasks until stopped.

    \b
      fluxqueue start -t myapp.tasks -q default
      fluxqueue start -t myapp/tasks.py -q urgent -c 32 -w 4 -b redis://localhost:6379/0
    """
    setup_logging(log_level, log_format.lower())
    config = StartConfig(
        module_paths=split_values(module_paths),
        queues=split_values(queues) or ["default"],
        concurrency=concurrency or DEFAULT_CONCURRENCY,
        prefetch=prefetch,
        broker_url=broker_url_from(ctx, broker_url, redis_url),
        workers=workers,
        burst=burst,
        shutdown_timeout=shutdown_timeout,
        accept=split_values(accept),
        log_level=log_level.lower(),
        log_format=log_format.lower(),
    )
    supervisor_pid = int(os.environ.get(SUPERVISOR_PID_ENV, "0") or 0)
    discovery = prepare(config)
    app = discovery.app
    if supervisor_pid:
        log.debug("worker process %s ready", os.environ.get(WORKER_INDEX_ENV, "?"))
    else:
        log_banner(app, discovery, config)
    if config.workers > 1 and not supervisor_pid:
        if not app.broker.persistent:
            raise CliError(
                f"--workers {config.workers} needs a broker shared between processes; "
                f"{mask_url(app.broker.url)} is private to one process"
            )
        supervisor = Supervisor(
            config.child_argv(),
            config.workers,
            burst=config.burst,
            shutdown_timeout=config.shutdown_timeout,
        )
        ctx.exit(supervisor.run())
    worker_loop.run(serve(app, config, supervisor_pid))
    exit_if_threads_linger()


def prepare(config: StartConfig) -> Discovery:
    """Import and check everything the worker needs; raise a one-line error if anything is
    wrong."""
    if config.broker_url is not None:
        scheme_of(config.broker_url)  # a malformed URL is reported before any import
        # A FluxQueue() created while importing the tasks then uses this broker directly.
        os.environ["FLUXQUEUE_BROKER_URL"] = config.broker_url
    discovery = discover(config.module_paths, config.queues)
    app = discovery.app
    if config.broker_url is not None and app.broker.url != config.broker_url:
        app.broker = app._make_broker(config.broker_url)
    if config.accept:
        app.set_accept([*app.accept, *config.accept])
    asyncio.run(check_broker(app, config.queues))
    return discovery


async def check_broker(app: FluxQueue, queues: list[str]) -> None:
    """One cheap call, so that a wrong URL or a broker that is down fails the start."""
    where = describe_broker(app)
    try:
        await asyncio.wait_for(app.admin.stats(queues), BROKER_CHECK_TIMEOUT)
    except asyncio.TimeoutError:
        raise CliError(f"broker {where} did not answer within {BROKER_CHECK_TIMEOUT:g}s") from None
    except FluxQueueError as exc:
        raise CliError(f"cannot use broker {where}: {exc}") from None
    except Exception as exc:  # a backend that lets a driver error through
        raise CliError(f"cannot use broker {where}: {type(exc).__name__}: {exc}") from None
    finally:
        try:
            await app.broker.close()
        except Exception:
            pass


def describe_broker(app: FluxQueue) -> str:
    """The broker URL with its password masked; for SQLite, the absolute database path."""
    broker = app.broker
    url = mask_url(broker.url)
    if scheme_of(broker.url) != "sqlite":
        return url
    path = getattr(broker, "path", None)
    if not isinstance(path, (str, os.PathLike)):
        rest = broker.url.split("://", 1)[1].split("?", 1)[0]
        path = rest[1:] if rest.startswith("/") else rest
    path = os.fspath(path)
    if path and path != ":memory:":
        return f"{url} (file {os.path.abspath(path)})"
    return url


def log_banner(app: FluxQueue, discovery: Discovery, config: StartConfig) -> None:
    broker = describe_broker(app)
    log.info(
        "fluxqueue %s: broker %s, serializer %s (accepts %s)",
        __version__, broker, app.serializer.name, ", ".join(app.accept),
        extra={"version": __version__, "broker": broker, "serializer": app.serializer.name},
    )  # fmt: skip
    for queue, tasks in discovery.by_queue.items():
        names = [task.task_name for task in tasks]
        log.info(
            "queue %s: %s", queue, ", ".join(names) or "(no tasks defined here)",
            extra={"queue": queue, "tasks": names},
        )  # fmt: skip
    mode = " (burst: exit when the queues are empty)" if config.burst else ""
    log.info(
        "concurrency %d per process, %d process(es), shutdown timeout %gs%s",
        config.concurrency, config.workers, config.shutdown_timeout, mode,
        extra={"concurrency": config.concurrency, "processes": config.workers},
    )  # fmt: skip
    if not app.broker.persistent:
        log.warning("%s is private to this process: only tasks enqueued here will run", broker)


async def serve(app: FluxQueue, config: StartConfig, supervisor_pid: int = 0) -> None:
    worker = Worker(
        app,
        queues=config.queues,
        concurrency=config.concurrency,
        prefetch=config.prefetch,
        burst=config.burst,
        shutdown_timeout=config.shutdown_timeout,
        handle_signals=True,
    )
    watcher = asyncio.ensure_future(watch_supervisor(worker, supervisor_pid))
    try:
        await worker.run()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await app.broker.close()


def exit_if_threads_linger() -> None:
    """Exit now if an interrupted sync task is still blocked in a C call.

    Its message is already back in its queue, but Python would wait for the thread at exit
    (a ``time.sleep(3600)`` cannot be interrupted), so the process would never end.
    """
    stuck = [
        t
        for t in threading.enumerate()
        if t.name.startswith("fluxqueue-task") and t.is_alive() and not t.daemon
    ]
    if not stuck:
        return
    log.warning("a task thread is still blocked after shutdown; exiting without it")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


async def watch_supervisor(worker: Worker, supervisor_pid: int) -> Any:
    """Stop gracefully if the supervisor that started this process is gone."""
    if not supervisor_pid:
        return
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != supervisor_pid:
            log.warning("supervisor (pid %d) is gone: stopping", supervisor_pid)
            worker.stop()
            # Nobody is left to kill this process if the stop hangs: do it ourselves.
            await asyncio.sleep(worker.shutdown_timeout + KILL_GRACE)
            log.error("worker did not stop in time after its supervisor left: exiting")
            logging.shutdown()
            os._exit(1)
