"""Following a task: TaskHandle, TaskResult, Status and Priority."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fluxqueue._bridge import run_sync
from fluxqueue.errors import ConfigurationError, TaskAborted, TaskFailed
from fluxqueue.state import State, decode_state

if TYPE_CHECKING:
    from fluxqueue.core import AppCore

__all__ = ["Priority", "Status", "TaskHandle", "TaskResult"]

R = TypeVar("R")


class Status(str, enum.Enum):
    PENDING = "PENDING"
    SCHEDULED = "SCHEDULED"
    STARTED = "STARTED"
    RETRYING = "RETRYING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    ABORTED = "ABORTED"

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({Status.SUCCESS, Status.FAILURE, Status.ABORTED})
FINAL_STATUSES = frozenset(s.value for s in _FINAL)


class Priority(enum.IntEnum):
    """Lower runs first. Strings ("high") and ints (1) are accepted wherever it is."""

    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3

    @classmethod
    def coerce(cls, value: Priority | int | str) -> Priority:
        try:
            if isinstance(value, str):
                return cls[value.strip().upper()]
            return cls(value)
        except (KeyError, ValueError):
            names = ", ".join(p.name.lower() for p in cls)
            raise ConfigurationError(
                f"unknown priority {value!r}: use one of {names} (or 0-3)"
            ) from None


def _when(value: Any) -> datetime | None:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    return None


@dataclass
class TaskResult:
    """Everything known about one task."""

    task_id: str
    name: str | None
    queue: str | None
    status: Status
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    attempts: int = 0
    max_retries: int | None = None
    enqueued_at: datetime | None = None
    eta: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    worker: str | None = None
    outputs: list[Any] = field(default_factory=list)

    @classmethod
    def from_state(cls, task_id: str, state: State, app: AppCore) -> TaskResult:
        meta, body = decode_state(state.data) if state.data else ({}, b"")
        result = None
        if body:
            result = app.codec.decode(meta.get("content_type", ""), body)
        return cls(
            task_id=task_id,
            name=meta.get("name"),
            queue=meta.get("queue"),
            status=Status(state.status),
            result=result,
            error=meta.get("error"),
            error_type=meta.get("error_type"),
            traceback=meta.get("traceback"),
            attempts=int(meta.get("attempts", 0)),
            max_retries=meta.get("max_retries"),
            enqueued_at=_when(meta.get("enqueued_at")),
            eta=_when(meta.get("eta")),
            started_at=_when(meta.get("started_at")),
            completed_at=_when(meta.get("completed_at")),
            worker=meta.get("worker"),
        )

    def unwrap(self) -> Any:
        """The return value; raise TaskFailed / TaskAborted for those outcomes."""
        if self.status is Status.FAILURE:
            raise TaskFailed(
                self.task_id, self.error_type or "Error", self.error or "", self.traceback
            )
        if self.status is Status.ABORTED:
            raise TaskAborted(self.task_id)
        return self.result


class TaskHandle(Generic[R]):
    """A reference to an enqueued task, usable from any process that shares the broker.

    Every method has a synchronous form and an async one (prefixed ``a``).
    """

    __slots__ = ("app", "id")

    def __init__(self, app: AppCore, task_id: str) -> None:
        self.app = app
        self.id = task_id

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- async -----------------------------------------------------------------------

    async def astatus(self) -> Status:
        """The current status; PENDING for an id the broker does not know (yet)."""
        state = await self.app.broker.get_state(self.id)
        return Status.PENDING if state is None else Status(state.status)

    async def ainfo(self) -> TaskResult:
        broker = self.app.broker
        state = await broker.get_state(self.id)
        if state is None:
            return TaskResult(self.id, None, None, Status.PENDING)
        info = TaskResult.from_state(self.id, state, self.app)
        info.outputs = self.app.codec.decode_outputs(await broker.get_outputs(self.id))
        return info

    async def aresult(self, timeout: float | None = None) -> R:
        """Wait for the task to finish and return its value.

        Raises :class:`TaskFailed` or :class:`TaskAborted` for those outcomes and the
        builtin ``TimeoutError`` when ``timeout`` seconds pass first.
        """
        state = await self.app.broker.wait_state(self.id, FINAL_STATUSES, timeout)
        if state is None or state.status not in FINAL_STATUSES:
            status = "unknown" if state is None else state.status
            raise TimeoutError(
                f"task {self.id} did not finish within {timeout}s (status: {status})"
            )
        value: R = TaskResult.from_state(self.id, state, self.app).unwrap()
        return value

    async def aabort(self) -> bool:
        """Abort the task: removed if still waiting, cancelled if running.

        Returns False when there was nothing to abort (unknown or already finished).
        """
        return await self.app.broker.abort(self.id) != "missing"

    async def astream(self, timeout: float | None = None) -> AsyncIterator[Any]:
        """Yield a generator task's items as they are stored, until the task finishes.

        If an attempt fails and the task is retried, the items of the retry follow those
        already yielded. Raises like :meth:`aresult` if the task fails, is aborted or times
        out.
        """
        broker = self.app.broker
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = latest = 0
        delay = 0.002
        while True:
            state = await broker.get_state(self.id)
            items = await broker.get_outputs(self.id, seen)
            for item in items:
                attempt, value = self.app.codec.decode_output(item)
                if attempt >= latest:  # a late item of an earlier, failed attempt is skipped
                    latest = attempt
                    yield value
            seen += len(items)
            if items:
                delay = 0.002
            if state is not None and state.status in FINAL_STATUSES:
                if not items:
                    TaskResult.from_state(self.id, state, self.app).unwrap()
                    return
                continue
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {self.id} did not finish streaming within {timeout}s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    # -- sync ------------------------------------------------------------------------

    def status(self) -> Status:
        return run_sync(self.astatus())

    def info(self) -> TaskResult:
        return run_sync(self.ainfo())

    def result(self, timeout: float | None = None) -> R:
        return run_sync(self.aresult(timeout))

    def abort(self) -> bool:
        return run_sync(self.aabort())

    def stream(self, timeout: float | None = None) -> Iterator[Any]:
        """The synchronous form of :meth:`astream`."""
        agen = self.astream(timeout)

        async def step() -> Any:
            return await agen.__anext__()

        while True:
            try:
                yield run_sync(step())
            except StopAsyncIteration:
                return
