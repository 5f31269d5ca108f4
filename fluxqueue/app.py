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
from fluxqueue.context import WorkerResources
from fluxqueue.errors import (
    ContentTypeRefused,
    DuplicateTaskError,
    FluxQueueError,
    InvalidTaskError,
    SerializationError,
)
from fluxqueue.handle import Priority, TaskHandle
from fluxqueue.message import Message, frame, unframe
from fluxqueue.plugins.manager import PluginManager, get_plugin_manager
from fluxqueue.security import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_RESULT_SIZE,
    Signer,
    check_body_size,
    make_signer,
    size_limit,
)
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
        self.serializer: Serializer = self._make_serializer(
            serializer or os.environ.get("FLUXQUEUE_SERIALIZER") or "json"
        )
        if result_ttl is not None and result_ttl <= 0:
            raise FluxQueueError(f"result_ttl must be positive seconds or None, got {result_ttl!r}")
        self.result_ttl = result_ttl
        self.accept: list[str] = []
        self._decoders: dict[str, Serializer] = {}
        self.set_accept(accept or _env_list("FLUXQUEUE_ACCEPT") or [])
        self.signer: Signer | None = make_signer(signing_key, verify_keys)
        self.max_message_size = size_limit(
            max_message_size, "FLUXQUEUE_MAX_MESSAGE_SIZE", DEFAULT_MAX_MESSAGE_SIZE
        )
        self.max_result_size = size_limit(
            max_result_size, "FLUXQUEUE_MAX_RESULT_SIZE", DEFAULT_MAX_RESULT_SIZE
        )
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
        decoders = {self.serializer.content_type: self.serializer}
        accepted = [self.serializer.name]
        for name in ["json", *names]:
            serializer = self._make_serializer(name)
            if serializer.name not in accepted:
                accepted.append(serializer.name)
            decoders.setdefault(serializer.content_type, serializer)
        self.accept, self._decoders = accepted, decoders

    def decode(self, content_type: str, data: bytes) -> Any:
        """Decode ``data`` with an accepted serializer, or refuse it clearly."""
        serializer = self._decoders.get(content_type)
        if serializer is None:
            raise ContentTypeRefused(
                f"content type {content_type!r} is not accepted here (accepted: "
                f"{', '.join(self.accept)}); if you trust the producers, add its serializer "
                "with FluxQueue(accept=[...]), --accept or FLUXQUEUE_ACCEPT"
            )
        return serializer.loads(data)

    def encode_output(self, value: Any, attempt: int = 0) -> bytes:
        """One streamed item, tagged with the serializer that encoded it and the attempt
        that yielded it (so a retried generator's items are told apart)."""
        header = {"content_type": self.serializer.content_type, "attempt": attempt}
        return frame(header, self.serializer.dumps(value))

    def decode_output(self, data: bytes) -> tuple[int, Any]:
        """(attempt, value) of one streamed item."""
        header, body = unframe(data)
        return int(header.get("attempt", 0)), self.decode(str(header.get("content_type")), body)

    def decode_outputs(self, items: Sequence[bytes]) -> list[Any]:
        """The values the latest attempt yielded (earlier, failed attempts are dropped)."""
        decoded = [self.decode_output(item) for item in items]
        latest = max((attempt for attempt, _ in decoded), default=0)
        return [value for attempt, value in decoded if attempt == latest]

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

    def encode_args(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """Serialize a call's arguments; on failure, name the argument that is at fault."""
        serializer = self.serializer
        try:
            body = serializer.dumps([args, kwargs])
        except SerializationError as exc:
            raise self._argument_error(spec, args, kwargs, exc) from None
        limit = self.max_message_size
        if limit is not None and len(body) > limit:
            check_body_size(
                len(body), limit, f"the serialized arguments of task {spec.name!r}",
                "max_message_size",
            )  # fmt: skip
        return body

    def _argument_error(
        self,
        spec: TaskSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        error: SerializationError,
    ) -> SerializationError:
        names = list(spec.signature.parameters) if spec.signature is not None else []
        candidates = [
            (names[i] if i < len(names) else f"#{i}", v) for i, v in enumerate(args)
        ] + list(kwargs.items())
        for arg_name, value in candidates:
            try:
                self.serializer.dumps(value)
            except SerializationError as exc:
                return SerializationError(
                    f"argument {arg_name!r} of task {spec.name!r} is a "
                    f"{type(value).__name__}, which the {self.serializer.name} serializer "
                    f"cannot encode: {exc}"
                )
        return SerializationError(f"arguments of task {spec.name!r}: {error}")

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
        batch = self._prepared(messages)
        # The broker's blocking path when it has one (Redis), else the bridge thread.
        self.broker.enqueue_sync(batch, self.result_ttl)
        return self._enqueued(batch)

    async def aenqueue_many(self, messages: Iterable[Message]) -> list[TaskHandle[Any]]:
        batch = self._prepared(messages)
        await self.broker.enqueue(batch, self.result_ttl)
        return self._enqueued(batch)

    def _prepared(self, messages: Iterable[Message]) -> list[Message]:
        """Run the enqueueing hooks and sign: the batch as it goes to the broker."""
        batch = list(messages)
        if self.plugins.has_observers("fluxqueue_task_enqueueing"):
            for message in batch:
                self.plugins.notify("fluxqueue_task_enqueueing", app=self, message=message)
        signer = self.signer
        if signer is not None:  # after the hook: headers it adds are signed too
            for message in batch:
                signer.sign(message)
        return batch

    def _enqueued(self, batch: list[Message]) -> list[TaskHandle[Any]]:
        if self.plugins.has_observers("fluxqueue_task_enqueued"):
            for message in batch:
                self.plugins.notify("fluxqueue_task_enqueued", app=self, message=message)
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
