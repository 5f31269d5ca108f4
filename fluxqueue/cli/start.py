"""``fluxqueue start``: parse the command line, then serve.

With ``--workers 1`` (the default) this process becomes the worker: it hands itself over to
a lean worker process without click (same pid, see :mod:`fluxqueue.cli.serve`), or serves
in place when it cannot. With more, this process becomes a
:class:`~fluxqueue.cli.supervisor.Supervisor` of that many worker processes. Everything
that can be wrong with the input is checked before any worker starts, and reported as one
line.
"""

from __future__ import annotations

import click

from fluxqueue._url import mask_url
from fluxqueue.cli import serve
from fluxqueue.cli.logs import LOG_FORMATS, LOG_LEVELS, setup_logging
from fluxqueue.cli.options import (
    CliError,
    broker_options,
    broker_url_from,
    cli_errors,
    split_values,
    tasks_module_option,
)
from fluxqueue.cli.serve import DEFAULT_STARTUP_TIMEOUT, StartConfig
from fluxqueue.cli.supervisor import Supervisor
from fluxqueue.worker.runtime import DEFAULT_CONCURRENCY

__all__ = ["StartConfig", "start_command"]


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
    "--startup-timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_STARTUP_TIMEOUT,
    show_default=True,
    envvar="FLUXQUEUE_STARTUP_TIMEOUT",
    help="Seconds to keep trying a broker that is down at start-up, with a growing delay "
    "(0: fail at once). A wrong password or URL fails at once. "
    "[env: FLUXQUEUE_STARTUP_TIMEOUT]",
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
    startup_timeout: float,
    accept: tuple[str, ...],
    log_level: str,
    log_format: str,
) -> None:
    """Start a worker: import the tasks modules and run their tasks until stopped.

    \b
      fluxqueue start -t myapp.tasks -q default
      fluxqueue start -t myapp/tasks.py -q urgent -c 32 -w 4 -b redis://localhost:6379/0
    """
    config = StartConfig(
        module_paths=split_values(module_paths),
        queues=split_values(queues) or ["default"],
        concurrency=concurrency or DEFAULT_CONCURRENCY,
        prefetch=prefetch,
        broker_url=broker_url_from(ctx, broker_url, redis_url),
        workers=workers,
        burst=burst,
        shutdown_timeout=shutdown_timeout,
        startup_timeout=startup_timeout,
        accept=split_values(accept),
        log_level=log_level.lower(),
        log_format=log_format.lower(),
    )
    supervising = config.workers > 1 and not serve.supervisor_pid()
    if not supervising and serve.can_hand_over():
        serve.hand_over(config)  # returns only if the worker process could not start
    setup_logging(config.log_level, config.log_format)
    if not supervising:
        serve.run(config)
        return
    discovery = serve.prepare(config)
    app = discovery.app
    if not app.broker.persistent:  # before the banner: nothing is started
        raise CliError(
            f"--workers {config.workers} needs a broker shared between processes; "
            f"{mask_url(app.broker.url)} is private to one process"
        )
    serve.log_banner(app, discovery, config)
    supervisor = Supervisor(
        config.child_argv(),
        config.workers,
        burst=config.burst,
        shutdown_timeout=config.shutdown_timeout,
    )
    ctx.exit(supervisor.run())
