"""What the executor reads from the worker that runs it, and the worker from its app.

Protocols, so that ``runtime.py`` (the worker) imports the executor and the outbox and
neither of them imports it back; ``runtime.Worker`` and ``app.FluxQueue`` meet them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from fluxqueue.core import AppCore

if TYPE_CHECKING:
    from fluxqueue.task import Task
    from fluxqueue.worker.job import Job
    from fluxqueue.worker.outbox import Outbox
    from fluxqueue.worker.threads import DaemonPool

__all__ = ["Host", "WorkerApp"]


class WorkerApp(AppCore, Protocol):
    """An app as its worker sees it: the core fields and the registered tasks."""

    @property
    def tasks(self) -> Mapping[str, Task[Any, Any]]:
        """The tasks this worker can run, by name."""


class Host(Protocol):
    """The worker as its executor sees it: who it is, where bodies run, its slots."""

    @property
    def app(self) -> WorkerApp: ...
    @property
    def id(self) -> str: ...
    @property
    def pool(self) -> DaemonPool:
        """The threads that run sync bodies."""

    @property
    def outbox(self) -> Outbox:
        """Where STARTED writes and acks are batched."""

    async def acquire_slot(self, job: Job) -> bool:
        """Wait for a free slot; False when the job was cancelled before it got one."""

    def release_slot(self) -> None:
        """Give the slot back (to the next waiting job, if any)."""

    def release(self, job: Job) -> None:
        """``job`` no longer counts against the worker's capacity (its body is over)."""
