"""FluxQueue: configuration, the task registry, and enqueueing."""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

from fluxqueue._bridge import run_sync
from fluxqueue._url import mask_url, scheme_of
from fluxqueue.admin import Admin
from fluxqueue.backends.base import Broker
from fluxqueue.codec import Codec
from fluxqueue.context import WorkerResources
from fluxqueue.errors import DuplicateTaskError, FluxQueueError, InvalidTaskError
from fluxqueue.handle import Priority, TaskHandle
from fluxqueue.message import Message
from fluxqueue.plugins.manager import PluginManager, get_plugin_manager
from fluxqueue.security import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_RESULT_SIZE,
    Signer,
    make_signer,
    size_limit,
)
from fluxqueue.sending import asend, send
from fluxqueue.serializers.base import Serializer
from fluxqueue.task import AsyncTask, Sender, SyncTask, Task, TaskOptions, TaskSpec

__all__ = ["DEFAULT_BROKER_URL", "FluxQueue"]

log = logging.getLogger("fluxqueue")

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C")

#: Used when neither an argument nor FLUXQUEUE_BROKER_URL / FLUXQUEUE_REDIS_URL names a broker.
DEFAULT_BROKER_URL = "sqlite:///fluxqueue.db"
DEFAULT_RESULT_TTL = 24 * 3600.0


class TaskDecorator(Protocol):
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> SyncTask[P, R]: ...


class ContextTaskDecorator(Protocol):
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]], /
    ) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], R], /) -> SyncTask[P, R]: ...


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    return [p.strip() for p in raw.split(",") if p.strip()] if raw else None


class FluxQueue:
    """A task queue: where tasks are registered, how they are encoded, where they go.

    ``broker`` is a URL whose scheme picks the backend (``redis://``, ``sqlite:///``,
    ``memory://``, or a plugin's) or a :class:`Broker` instance. Without one, the
    ``FLUXQUEUE_BROKER_URL`` (or ``FLUXQUEUE_REDIS_URL``) environment variable
    is used, then ``DEFAULT_BROKER_URL``. ``serializer`` is a registered name (``"json"``,
    the default; ``"pickle"``) or an instance; ``accept`` lists the serializer names a worker
    of this app decodes (default: ``json`` and the app's own serializer).

    ``signing_key`` (else ``FLUXQUEUE_SIGNING_KEY``) signs every message and makes workers
    refuse unsigned or tampered ones; ``verify_keys`` (else ``FLUXQUEUE_SIGNING_KEYS_OLD``)
    are still accepted during a key rotation. ``max_message_size`` and ``max_result_size``
    (else ``FLUXQUEUE_MAX_MESSAGE_SIZE`` / ``FLUXQUEUE_MAX_RESULT_SIZE``; 512 KiB each; 0 for
    no limit) bound serialized arguments and results. See ``docs/security.md``.
    """

    def __init__(
        self,
        broker: str | Broker | None = None,
        *,
        redis_url: str | None = None,
        serializer: str | Serializer | None = None,
        accept: Sequence[str] | None = None,
        result_ttl: float | None = DEFAULT_RESULT_TTL,
        signing_key: str | bytes | None = None,
        verify_keys: Sequence[str | bytes] | None = None,
        max_message_size: int | None = None,
        max_result_size: int | None = None,
    ) -> None:
        self.plugins: PluginManager = get_plugin_manager()
        if broker is not None and redis_url is not None:
            raise FluxQueueError("give either a broker URL or redis_url=, not both")
        self.broker: Broker = self._make_broker(
            broker
            or redis_url
            or os.environ.get("FLUXQUEUE_BROKER_URL")
            or os.environ.get("FLUXQUEUE_REDIS_URL")
            or DEFAULT_BROKER_URL
        )
        own = self._make_serializer(serializer or os.environ.get("FLUXQUEUE_SERIALIZER") or "json")
        if result_ttl is not None and result_ttl <= 0:
            raise FluxQueueError(f"result_ttl must be positive seconds or None, got {result_ttl!r}")
        self.result_ttl = result_ttl
        self.codec = Codec(
            own,
            self._make_serializer,
            accept or _env_list("FLUXQUEUE_ACCEPT") or [],
            size_limit(max_message_size, "FLUXQUEUE_MAX_MESSAGE_SIZE", DEFAULT_MAX_MESSAGE_SIZE),
            size_limit(max_result_size, "FLUXQUEUE_MAX_RESULT_SIZE", DEFAULT_MAX_RESULT_SIZE),
        )
        self.signer: Signer | None = make_signer(signing_key, verify_keys)
        self.tasks: dict[str, Task[Any, Any]] = {}
        #: The ``@fq.lifespan`` resources, opened and closed by the worker.
        self.worker_resources = WorkerResources()
        self._lock = threading.Lock()
        self.admin = Admin(self)

    def __repr__(self) -> str:
        return (
            f"<FluxQueue broker={mask_url(self.broker.url)!r} serializer={self.serializer.name!r}>"
        )

    # -- configuration ---------------------------------------------------------------

    def _make_broker(self, broker: str | Broker) -> Broker:
        if isinstance(broker, Broker):
            return broker
        scheme = scheme_of(broker)
        cls = self.plugins.resolve("broker", scheme, Broker)  # type: ignore[type-abstract]
        return cls(broker.strip())

    def use_broker(self, broker: str | Broker) -> Broker:
        """Switch this app to another broker (a URL or an instance); return it.

        The CLI uses it when ``--broker`` overrides the broker of the app it imported.
        The previous broker is not closed: close it first if this process used it.
        """
        self.broker = self._make_broker(broker)
        return self.broker

    def _make_serializer(self, serializer: str | Serializer) -> Serializer:
        if isinstance(serializer, Serializer):
            return serializer
        return self.plugins.resolve("serializer", serializer, Serializer)()  # type: ignore[type-abstract]

    def set_accept(self, names: Iterable[str]) -> None:
        """Which serializers a worker of this app decodes (the app's own is always in)."""
        self.codec.set_accept(names)

    @property
    def serializer(self) -> Serializer:
        """The serializer that encodes what this app sends."""
        return self.codec.serializer

    @property
    def accept(self) -> list[str]:
        """The names of the serializers a worker of this app decodes."""
        return self.codec.accept

    @property
    def max_message_size(self) -> int | None:
        """The bound on a task's serialized arguments, in bytes (None: no limit)."""
        return self.codec.max_message_size

    @property
    def max_result_size(self) -> int | None:
        """The bound on a task's serialized result and each streamed item (None: no limit)."""
        return self.codec.max_result_size

    # -- defining tasks --------------------------------------------------------------

    @overload
    def task(  # type: ignore[overload-overlap]
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncTask[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> SyncTask[P, R]: ...
    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        max_retries: int = 3,
        priority: Priority | int | str = Priority.NORMAL,
        timeout: float | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
        backoff: float = 1.0,
        backoff_max: float = 300.0,
        backoff_factor: float = 2.0,
        jitter: bool = True,
    ) -> TaskDecorator: ...

    def task(self, fn: Any = None, /, *, name: str | None = None, **options: Any) -> Any:
        """Register a function (sync, async, or a generator of either) as a task.

        Use bare (``@fq.task``) or with options (``@fq.task(name=..., queue=...)``).
        """
        if fn is not None:
            return self._register(fn, name, options, with_context=False)
        return lambda f: self._register(f, name, options, with_context=False)

    @overload
    def task_with_context(  # type: ignore[overload-overlap]
        self, fn: Callable[Concatenate[C, P], Coroutine[Any, Any, R]], /
    ) -> AsyncTask[P, R]: ...
    @overload
    def task_with_context(self, fn: Callable[Concatenate[C, P], R], /) -> SyncTask[P, R]: ...
    @overload
    def task_with_context(
        self, fn: None = None, /, *, name: str | None = None, **options: Any
    ) -> ContextTaskDecorator: ...

    def task_with_context(
        self, fn: Any = None, /, *, name: str | None = None, **options: Any
    ) -> Any:
        """Like :meth:`task`, but the worker passes a :class:`~fluxqueue.Context` first."""
        if fn is not None:
            return self._register(fn, name, options, with_context=True)
        return lambda f: self._register(f, name, options, with_context=True)

    def _register(
        self, fn: Any, name: str | None, options: dict[str, Any], with_context: bool
    ) -> Task[Any, Any]:
        if isinstance(fn, Task):
            raise InvalidTaskError(f"{fn!r} is already a task; decorate the function only once")
        if not callable(fn) or isinstance(fn, type):
            hint = f"; to name the task write @task(name={fn!r})" if isinstance(fn, str) else ""
            raise InvalidTaskError(
                f"@task decorates a function, got {fn!r} ({type(fn).__name__}){hint}"
            )
        try:
            task_options = TaskOptions(**options)
        except TypeError as exc:
            raise InvalidTaskError(f"@task got an unknown option: {exc}") from None
        task_name = name if name is not None else getattr(fn, "__name__", None)
        if not isinstance(task_name, str) or not task_name:
            raise InvalidTaskError(f"cannot derive a task name from {fn!r}; pass name=")
        spec = TaskSpec(self, task_name, task_options, fn, with_context)
        cls = AsyncTask if inspect.iscoroutinefunction(fn) else SyncTask
        task: Task[Any, Any] = cls(spec)
        with self._lock:
            existing = self.tasks.get(task_name)
            if existing is not None and _where(existing.fn) != _where(fn):
                raise DuplicateTaskError(
                    f"task name {task_name!r} is used by both {_where(existing.fn)} and "
                    f"{_where(fn)}; give one of them another name= "
                )
            self.tasks[task_name] = task
        return task

    def lifespan(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register worker resources: a function returning a (sync or async) context manager,
        or a generator function that yields once. What it yields is ``fq.context`` in tasks.
        """
        self.worker_resources.register(fn)
        return fn

    @property
    def context(self) -> Any:
        """What ``@fq.lifespan`` yielded, while a worker of this app runs in this process."""
        return self.worker_resources.value

    # -- enqueueing ------------------------------------------------------------------

    def named(self, name: str) -> Sender[..., Any]:
        """A sender for a task by name, also one defined in another code base.

        ``fq.named("resize").options(queue="images", delay=5).enqueue(42)``
        """
        task = self.tasks.get(name)
        return task if task is not None else Sender(TaskSpec(self, name, TaskOptions()))

    def enqueue(self, name: str, /, *args: Any, **kwargs: Any) -> TaskHandle[Any]:
        """Enqueue a task by name: ``fq.enqueue("send-welcome-email", user_id=1)``."""
        return self.named(name).enqueue(*args, **kwargs)

    async def aenqueue(self, name: str, /, *args: Any, **kwargs: Any) -> TaskHandle[Any]:
        return await self.named(name).aenqueue(*args, **kwargs)

    def enqueue_many(self, messages: Iterable[Message]) -> list[TaskHandle[Any]]:
        """Send many messages (``task.message(...)``) in as few round trips as possible."""
        batch = list(messages)
        send(self, batch)
        return [TaskHandle(self, m.id) for m in batch]

    async def aenqueue_many(self, messages: Iterable[Message]) -> list[TaskHandle[Any]]:
        batch = list(messages)
        await asend(self, batch)
        return [TaskHandle(self, m.id) for m in batch]

    def get_task(self, task_id: str) -> TaskHandle[Any]:
        """A handle for a task id, from any process that shares the broker."""
        return TaskHandle(self, task_id)

    # -- running ---------------------------------------------------------------------

    def run_worker(
        self,
        *,
        burst: bool = False,
        concurrency: int | None = None,
        queues: Sequence[str] | None = None,
        **options: Any,
    ) -> None:
        """Run a worker in this process.

        With ``burst=True`` it runs every ready task (including those that tasks enqueue)
        and returns when none is left; otherwise it serves until SIGTERM or SIGINT.
        ``queues`` defaults to every queue of the registered tasks.
        """
        from fluxqueue.worker.loop import run

        run(self.arun_worker(burst=burst, concurrency=concurrency, queues=queues, **options))

    async def arun_worker(
        self,
        *,
        burst: bool = False,
        concurrency: int | None = None,
        queues: Sequence[str] | None = None,
        **options: Any,
    ) -> None:
        from fluxqueue.worker import Worker

        worker = Worker(self, queues=queues, concurrency=concurrency, burst=burst, **options)
        await worker.run()

    def run(self, coro: Awaitable[R]) -> R:
        """Run a coroutine of this library from sync code (on the bridge loop)."""

        async def wrapper() -> R:
            return await coro

        return run_sync(wrapper())

    def close(self) -> None:
        """Close the broker's connections (it reconnects if used again)."""
        run_sync(self.broker.close())


def _where(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
