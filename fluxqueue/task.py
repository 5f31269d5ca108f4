"""Tasks: the decorated function, its options, and the objects that enqueue it."""

from __future__ import annotations

import inspect
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from fluxqueue.errors import ConfigurationError
from fluxqueue.handle import Priority, TaskHandle
from fluxqueue.message import Message, new_id
from fluxqueue.sending import asend, send

if TYPE_CHECKING:
    from fluxqueue.core import AppCore

__all__ = ["AsyncTask", "Sender", "SyncTask", "Task", "TaskOptions"]

P = ParamSpec("P")
R = TypeVar("R")

Delay = float | int | timedelta

#: Header listing the options a producer left to the task's definition at the worker.
UNSET_HEADER = "fq-unset"
When = datetime | float | int


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """How a task is queued and retried. Set on the decorator; some can be overridden per call.

    ``max_retries=N`` allows at most N+1 attempts. The n-th retry waits
    ``min(backoff_max, backoff * backoff_factor ** (n - 1))`` seconds, scaled by a random
    factor between 0.5 and 1 when ``jitter`` is on, so that failing tasks do not retry in
    lock step. Only exceptions that are instances of ``retry_on`` are retried; any other
    error ends the task in FAILURE at once.
    """

    queue: str = "default"
    priority: Priority = Priority.NORMAL
    max_retries: int = 3
    timeout: float | None = None
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    backoff: float = 1.0
    backoff_max: float = 300.0
    backoff_factor: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        check_queue(self.queue)
        object.__setattr__(self, "priority", Priority.coerce(self.priority))
        check_count("max_retries", self.max_retries)
        check_seconds("timeout", self.timeout)
        for name in ("backoff", "backoff_max", "backoff_factor"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}")
        retry_on = self.retry_on
        if isinstance(retry_on, type):
            retry_on = (retry_on,)
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in retry_on):
            raise ConfigurationError(f"retry_on must be exception classes, got {self.retry_on!r}")
        object.__setattr__(self, "retry_on", tuple(retry_on))

    def retry_delay(self, failures: int) -> float:
        """Seconds to wait before the retry that follows the ``failures``-th failed attempt."""
        delay = min(self.backoff_max, self.backoff * self.backoff_factor ** max(0, failures - 1))
        return delay * random.uniform(0.5, 1.0) if self.jitter else delay


def check_queue(queue: object) -> str:
    if not isinstance(queue, str) or not queue.strip():
        raise ConfigurationError(f"a queue name must be a non-empty string, got {queue!r}")
    return queue


def check_count(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def check_seconds(name: str, value: object) -> float | None:
    if value is not None and (not isinstance(value, (int, float)) or value <= 0):
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return value


def _eta(delay: Delay | None, eta: When | None) -> float | None:
    if delay is not None and eta is not None:
        raise ConfigurationError("give either delay= or eta=, not both")
    if delay is not None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise ConfigurationError(f"delay must be >= 0 seconds, got {delay!r}")
        return time.time() + seconds if seconds else None
    if isinstance(eta, datetime):
        return eta.timestamp()  # a naive datetime is taken as local time, like datetime does
    if eta is not None and not isinstance(eta, (int, float)):
        raise ConfigurationError(f"eta must be a datetime or a Unix timestamp, got {eta!r}")
    return eta


class TaskSpec:
    """A task's name, options and (when defined in this process) its function."""

    __slots__ = ("app", "fn", "kind", "name", "options", "signature", "with_context")

    def __init__(
        self,
        app: AppCore,
        name: str,
        options: TaskOptions,
        fn: Callable[..., Any] | None = None,
        with_context: bool = False,
    ) -> None:
        self.app = app
        self.name = name
        self.options = options
        self.fn = fn
        self.with_context = with_context
        self.signature: inspect.Signature | None = None
        #: How a worker runs the function, decided once: "coroutine" (awaited on the event
        #: loop), "asyncgen" (iterated there, each item an output) or "sync" (in a thread).
        self.kind = (
            "coroutine"
            if inspect.iscoroutinefunction(fn)
            else "asyncgen"
            if inspect.isasyncgenfunction(fn)
            else "sync"
        )
        if fn is not None:
            try:
                signature = inspect.signature(fn)
            except (TypeError, ValueError):
                signature = None
            if signature is not None and with_context:
                params = list(signature.parameters.values())[1:]
                signature = signature.replace(parameters=params)
            self.signature = signature


@dataclass(frozen=True, slots=True)
class _Overrides:
    queue: str | None = None
    priority: Priority | None = None
    eta: float | None = None
    task_id: str | None = None
    max_retries: int | None = None
    timeout: float | None = None


_NO_OVERRIDES = _Overrides()


class Sender(Generic[P, R]):
    """Enqueues one task with fixed options: what ``task.options(...)`` returns."""

    __slots__ = ("_over", "_spec")

    def __init__(self, spec: TaskSpec, overrides: _Overrides = _NO_OVERRIDES) -> None:
        self._spec = spec
        self._over = overrides

    @property
    def task_name(self) -> str:
        return self._spec.name

    @property
    def spec(self) -> TaskSpec:
        """The task's definition (name, options, function, how a worker runs it): what the
        worker reads to run it."""
        return self._spec

    def options(
        self,
        *,
        delay: Delay | None = None,
        eta: When | None = None,
        priority: Priority | int | str | None = None,
        queue: str | None = None,
        task_id: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
    ) -> Sender[P, R]:
        """The same task with per-call options: delay or eta, priority, queue, id, ..."""
        over = self._over
        changes: dict[str, Any] = {}
        if delay is not None or eta is not None:
            changes["eta"] = _eta(delay, eta)
        if priority is not None:
            changes["priority"] = Priority.coerce(priority)
        if queue is not None:
            changes["queue"] = check_queue(queue)
        if task_id is not None:
            if not isinstance(task_id, str) or not task_id:
                raise ConfigurationError(f"task_id must be a non-empty string, got {task_id!r}")
            changes["task_id"] = task_id
        if max_retries is not None:
            changes["max_retries"] = check_count("max_retries", max_retries)
        if timeout is not None:
            changes["timeout"] = check_seconds("timeout", timeout)
        return Sender(self._spec, replace(over, **changes))

    def message(self, *args: P.args, **kwargs: P.kwargs) -> Message:
        """Build the message for this call without sending it (see ``fq.enqueue_many``)."""
        spec, over = self._spec, self._over
        opts = spec.options
        codec = spec.app.codec
        task_id = over.task_id
        message = Message(
            task=spec.name,
            queue=over.queue or opts.queue,
            body=codec.encode_args(spec, args, kwargs),
            content_type=codec.serializer.content_type,
            id=task_id or new_id(),
            priority=int(opts.priority if over.priority is None else over.priority),
            eta=over.eta,
            max_retries=opts.max_retries if over.max_retries is None else over.max_retries,
            timeout=opts.timeout if over.timeout is None else over.timeout,
        )
        if spec.fn is None:
            # A task known here only by name: the worker, which has the function, fills in
            # the retry and timeout settings the caller did not choose.
            unset = [n for n in ("max_retries", "timeout") if getattr(over, n) is None]
            if unset:
                message.headers[UNSET_HEADER] = unset
        return message

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Send the task; return its handle at once."""
        message = self.message(*args, **kwargs)
        app = self._spec.app
        send(app, [message])
        return TaskHandle(app, message.id)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Send the task from async code; return its handle."""
        message = self.message(*args, **kwargs)
        app = self._spec.app
        await asend(app, [message])
        return TaskHandle(app, message.id)


class Task(Sender[P, R]):
    """A function registered with ``@fq.task``. Calling it enqueues it.

    ``fn`` (also ``__wrapped__``) is the plain function, to run it here and now.
    ``task_name`` and ``queue`` are what worker discovery looks for.
    """

    __slots__ = ("__dict__", "fn")

    def __init__(self, spec: TaskSpec) -> None:
        super().__init__(spec)
        assert spec.fn is not None
        self.fn = spec.fn
        self.__wrapped__ = spec.fn
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            value = getattr(spec.fn, attr, None)
            if value is not None:
                setattr(self, attr, value)
        if spec.signature is not None:
            self.__signature__ = spec.signature

    def __repr__(self) -> str:
        return f"<Task {self.task_name!r} queue={self.queue!r}>"

    @property
    def queue(self) -> str:
        return self._spec.options.queue

    @property
    def max_retries(self) -> int:
        return self._spec.options.max_retries

    @property
    def task_options(self) -> TaskOptions:
        return self._spec.options

    @property
    def app(self) -> AppCore:
        """The app the task is registered with (a ``FluxQueue``)."""
        return self._spec.app


class SyncTask(Task[P, R]):
    """A task whose function is synchronous: ``task(...)`` enqueues and returns a handle."""

    __slots__ = ()

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        return self.enqueue(*args, **kwargs)


class AsyncTask(Task[P, R]):
    """A task whose function is a coroutine function: ``await task(...)`` enqueues it."""

    __slots__ = ()

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, TaskHandle[R]]:
        return self.aenqueue(*args, **kwargs)
