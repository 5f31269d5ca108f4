"""What a running task can know about itself, and FluxQueue's ``Context`` class.

``current_task()`` works in sync and async tasks alike (it is a ``ContextVar``, copied into
the worker thread that runs a sync task). ``fq.context`` is what the app's ``@fq.lifespan``
yielded, shared by every task of the worker process.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fluxqueue.errors import FluxQueueError

__all__ = ["Context", "CurrentTask", "TaskMetadata", "WorkerResources", "current_task"]


@dataclass(frozen=True, slots=True)
class CurrentTask:
    """The task running in this context."""

    id: str
    name: str
    queue: str
    attempt: int
    max_retries: int
    created_at: float  # seconds since the epoch

    @property
    def task_id(self) -> str:
        return self.id

    @property
    def enqueued_at(self) -> datetime:
        return datetime.fromtimestamp(self.created_at, tz=timezone.utc)

    @property
    def retries(self) -> int:
        """How many times this task was retried before this attempt."""
        return self.attempt

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_retries


_current: ContextVar[CurrentTask | None] = ContextVar("fluxqueue_current_task", default=None)


def current_task() -> CurrentTask:
    """The running task's id, name, queue, attempt, max_retries and enqueued_at."""
    task = _current.get()
    if task is None:
        raise FluxQueueError("current_task() is only available while a task runs in a worker")
    return task


@dataclass(frozen=True, slots=True)
class TaskMetadata:
    """``ctx.metadata`` for ``@fq.task_with_context()`` tasks (FluxQueue's field names)."""

    task_id: str
    retries: int
    max_retries: int
    enqueued_at: str  # ISO 8601


class Context:
    """Passed as the first argument to ``@fq.task_with_context()`` tasks.

    ``metadata`` describes the running task; ``thread_storage`` is a dict that lives as long
    as the worker thread, for resources worth reusing across tasks (clients, engines).
    Subclass it to add helpers: the worker creates one instance of the class the task's
    first parameter is annotated with.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def thread_storage(self) -> dict[str, Any]:
        storage: dict[str, Any] | None = getattr(self._local, "storage", None)
        if storage is None:
            storage = self._local.storage = {}
        return storage

    @property
    def metadata(self) -> TaskMetadata:
        task = current_task()
        return TaskMetadata(task.id, task.attempt, task.max_retries, task.enqueued_at.isoformat())


class WorkerResources:
    """The app's ``@fq.lifespan`` resources: entered once when a worker starts, exited when
    it stops; what the lifespan yielded is ``fq.context`` meanwhile.

    The app registers the lifespan; the worker opens and closes the resources. Keeping the
    state here gives both one interface instead of the worker writing the app's fields.
    """

    def __init__(self) -> None:
        self._factory: Callable[[], Any] | None = None
        self._manager: Any = None
        self._value: Any = None
        self._open = False

    def register(self, fn: Callable[[], Any]) -> None:
        """``fn`` returns a (sync or async) context manager, or is a generator function
        (sync or async) that yields once."""
        if inspect.isasyncgenfunction(fn):
            self._factory = asynccontextmanager(fn)
        elif inspect.isgeneratorfunction(fn):
            self._factory = contextmanager(fn)
        else:
            self._factory = fn

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def value(self) -> Any:
        """What the lifespan yielded (None without a lifespan), while a worker runs."""
        if not self._open:
            raise FluxQueueError(
                "fq.context is only available while a worker runs; define it with @fq.lifespan"
            )
        return self._value

    async def open(self) -> None:
        """Enter the lifespan (if any). If entering fails, nothing is left open."""
        manager = self._factory() if self._factory is not None else None
        if manager is None:
            value = None
        elif hasattr(manager, "__aenter__"):
            value = await manager.__aenter__()
        else:
            value = manager.__enter__()
        self._manager, self._value, self._open = manager, value, True

    async def close(self) -> None:
        """Exit the lifespan entered by :meth:`open`; does nothing if none is open."""
        manager, was_open = self._manager, self._open
        self._manager, self._value, self._open = None, None, False
        if not was_open or manager is None:
            return
        if hasattr(manager, "__aexit__"):
            await manager.__aexit__(None, None, None)
        else:
            manager.__exit__(None, None, None)
