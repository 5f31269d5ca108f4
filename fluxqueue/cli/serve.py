"""The worker side of ``fluxqueue start``, free of click.

``fluxqueue start`` parses its command line with click, then, when it runs as a process of
its own, replaces itself (``os.execv``, same pid) with ``python -m fluxqueue.cli.worker``,
which imports the tasks, checks the broker and serves. Why: a worker is a long-lived
process, and whatever the command line loaded stays resident in it for its whole life
(click and the other commands: about 1.3 MB of a 33 MB worker). The handover happens before
any user code is imported, so the tasks modules are imported once, in the worker itself.

Everything that can be wrong with the input (a module that does not import, no tasks for
the queue, an unknown scheme or serializer, a broker that does not answer) is checked before
the worker starts, and reported as one line, ``Error: ...`` on stderr with exit status 1,
exactly as click reports it in the command-line process.

The handover is skipped, and the worker runs in the command-line process as before, when
that process is not a plain ``fluxqueue``/``python -m fluxqueue.cli`` run: under a debugger,
profiler or coverage tracer, in a frozen executable, on a platform without ``execv``, or
when ``cli`` is invoked in-process (click's ``CliRunner``, an application embedding it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from fluxqueue import __version__
from fluxqueue._url import mask_url, scheme_of
from fluxqueue.cli.discovery import Discovery, discover
from fluxqueue.cli.logs import setup_logging
from fluxqueue.cli.quiet_errors import SHOW_NOW, one_line_errors
from fluxqueue.cli.supervisor import KILL_GRACE, SUPERVISOR_PID_ENV, WORKER_INDEX_ENV
from fluxqueue.errors import BrokerConnectionError, FluxQueueError
from fluxqueue.worker import loop as worker_loop

if TYPE_CHECKING:
    from fluxqueue.app import FluxQueue
    from fluxqueue.worker.runtime import Worker

__all__ = [
    "BROKER_CHECK_TIMEOUT",
    "HANDOVER_ENV",
    "StartConfig",
    "StartError",
    "can_hand_over",
    "hand_over",
    "main",
    "prepare",
    "serve",
]

log = logging.getLogger("fluxqueue.cli")

#: How long the start-up check waits for the broker to answer, per attempt.
BROKER_CHECK_TIMEOUT = 10.0

#: How long a worker keeps trying a broker that is down when it starts (``--startup-timeout``,
#: ``FLUXQUEUE_STARTUP_TIMEOUT``): long enough for a Redis started by the same systemd
#: target or compose file a moment later.
DEFAULT_STARTUP_TIMEOUT = 30.0
#: The first wait between start-up attempts; it doubles up to STARTUP_MAX_DELAY.
STARTUP_FIRST_DELAY = 0.5
STARTUP_MAX_DELAY = 5.0

#: The parsed command line travels to the worker process in this variable (JSON), which
#: the worker removes at once: the broker URL never shows in ``ps``, and tasks that start
#: processes of their own do not pass it on.
HANDOVER_ENV = "_FLUXQUEUE_START"

#: Set by the console script's ``main()``: this process is a command line of its own, so
#: it may hand itself over to a worker. In-process callers of ``cli`` leave it False.
STANDALONE = False


class StartError(FluxQueueError):
    """A start-up problem: one line on stderr, then ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


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
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT

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
        argv += ["--startup-timeout", repr(self.startup_timeout)]
        argv += ["--log-level", self.log_level, "--log-format", self.log_format]
        if self.accept:
            argv += ["--accept", ",".join(self.accept)]
        if self.burst:
            argv.append("--burst")
        return argv


# -- the handover --------------------------------------------------------------------------


def can_hand_over() -> bool:
    """Whether this process may replace itself with a lean worker (see the module doc)."""
    return (
        STANDALONE
        and os.name == "posix"
        and hasattr(os, "execv")
        and bool(sys.executable)
        and not getattr(sys, "frozen", False)
        and sys.gettrace() is None
        and sys.getprofile() is None
    )


def hand_over(config: StartConfig) -> None:
    """Replace this process (same pid, same standard streams, same interpreter options)
    with ``python -m fluxqueue.cli.worker``, which serves ``config``. Returns only if the
    interpreter could not be started, and the caller then serves in this process.

    The original arguments follow the module name so that ``ps`` still shows what was
    started; the worker reads its configuration from :data:`HANDOVER_ENV` only, and puts
    back ``sys.argv`` and ``sys.path`` as they were here before any user code runs.
    """
    os.environ[HANDOVER_ENV] = json.dumps(
        {"config": asdict(config), "argv": sys.argv, "path": sys.path}
    )
    # -X, -W, -I ... as given to this interpreter (what multiprocessing passes on too).
    flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    argv = [sys.executable, *flags, "-m", "fluxqueue.cli.worker", *sys.argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, argv)
    except OSError as exc:
        del os.environ[HANDOVER_ENV]
        log.debug("cannot start %s (%s): serving in this process", sys.executable, exc)


def main() -> NoReturn:
    """The worker process after the handover: configuration from :data:`HANDOVER_ENV`."""
    if HANDOVER_ENV not in os.environ:
        _fail("python -m fluxqueue.cli.worker is started by `fluxqueue start`; run that", 2)
    handover = json.loads(os.environ.pop(HANDOVER_ENV))
    sys.argv[:] = handover["argv"]
    sys.path[:] = handover["path"]
    config = StartConfig(**handover["config"])
    setup_logging(config.log_level, config.log_format)
    try:
        run(config)
    except StartError as exc:
        _fail(exc.message, exc.exit_code)
    except FluxQueueError as exc:
        _fail(str(exc))
    except OSError as exc:  # a file or socket the user named, e.g. a read-only database
        _fail(f"{type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    sys.exit(0)


def _fail(message: str, exit_code: int = 1) -> NoReturn:
    """Report as click reports a ``ClickException`` in the command-line process."""
    sys.stdout.flush()
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    sys.exit(exit_code)


# -- starting and serving ------------------------------------------------------------------


def supervisor_pid() -> int:
    """The pid of the supervisor that started this process, or 0."""
    return int(os.environ.get(SUPERVISOR_PID_ENV, "0") or 0)


def run(config: StartConfig) -> None:
    """Import and check, then serve in this process until stopped (one worker process)."""
    with one_line_errors():
        discovery = prepare(config)
    app = discovery.app
    parent = supervisor_pid()
    if parent:
        log.debug("worker process %s ready", os.environ.get(WORKER_INDEX_ENV, "?"))
    else:
        log_banner(app, discovery, config)
    worker_loop.run(serve(app, config, parent))
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
        app.use_broker(config.broker_url)
    if config.accept:
        app.set_accept([*app.accept, *config.accept])
    asyncio.run(check_broker(app, config.queues, config.startup_timeout))
    return discovery


async def check_broker(app: FluxQueue, queues: list[str], startup_timeout: float = 0.0) -> None:
    """One cheap call, so that a wrong URL or a broker that is down fails the start.

    A broker that cannot be reached (or does not answer) is tried again with a doubling
    delay for up to ``startup_timeout`` seconds, one log line per attempt: under systemd,
    compose or a supervisor, the worker may start a moment before its broker. Anything
    else (a wrong password, a refused option) fails at once: waiting cannot fix it.
    """
    where = describe_broker(app)
    deadline = time.monotonic() + startup_timeout
    delay = STARTUP_FIRST_DELAY
    attempt = 1
    try:
        while True:
            problem = await _try_broker(app, queues, where)
            if problem is None:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                tried = f" (gave up after {attempt} attempts)" if attempt > 1 else ""
                raise StartError(f"{problem}{tried}")
            wait = min(delay, left)
            log.warning(
                "%s; attempt %d failed, trying again in %.1fs (giving up in %.0fs)",
                problem, attempt, wait, left,
                extra={SHOW_NOW: True, "broker": where, "startup_attempt": attempt},
            )  # fmt: skip
            await asyncio.sleep(wait)
            delay = min(delay * 2, STARTUP_MAX_DELAY)
            attempt += 1
    finally:
        try:
            await app.broker.close()
        except Exception:
            pass


async def _try_broker(app: FluxQueue, queues: list[str], where: str) -> str | None:
    """None when the broker answers; what is wrong when it is down (worth waiting for).
    Raises :class:`StartError` for what waiting cannot fix."""
    try:
        await asyncio.wait_for(app.admin.stats(queues), BROKER_CHECK_TIMEOUT)
    except asyncio.TimeoutError:
        return f"broker {where} did not answer within {BROKER_CHECK_TIMEOUT:g}s"
    except BrokerConnectionError as exc:
        return f"cannot use broker {where}: {exc}"
    except FluxQueueError as exc:
        raise StartError(f"cannot use broker {where}: {exc}") from None
    except Exception as exc:  # a backend that lets a driver error through
        raise StartError(f"cannot use broker {where}: {type(exc).__name__}: {exc}") from None
    return None


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
    from fluxqueue.worker.runtime import Worker

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
