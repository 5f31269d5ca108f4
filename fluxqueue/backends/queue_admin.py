"""Group 5 of the broker contract: looking into queues. One method required, four optional.

``stats`` is required: the worker's start-up check and ``fluxqueue info`` use it, and only
the backend can count its own queues. The other four serve operators (``fluxqueue dead``,
``purge``, ``promote``) and :func:`fluxqueue.testing.run_all`; a backend that cannot
offer one (a message broker that cannot list or delete what it holds) leaves it out, and
the default raises :class:`~fluxqueue.errors.UnsupportedOperation` naming the backend and
the operation, which the CLI prints as its one-line error. No default pretends: an empty
list of dead letters or a purge of zero would hide messages that are there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from fluxqueue.backends.records import BrokerStats, DeadLetter
from fluxqueue.errors import UnsupportedOperation

__all__ = ["QueueAdmin", "unsupported"]


def unsupported(backend: object, operation: str) -> UnsupportedOperation:
    """The error an operation a backend does not offer raises."""
    return UnsupportedOperation(
        f"the {type(backend).__name__} broker does not support {operation}; "
        "use a backend that does (memory, sqlite, redis) for this operation"
    )


class QueueAdmin(ABC):
    """stats (required); dead_letters, remove_dead, purge, promote_scheduled (optional)."""

    @abstractmethod
    async def stats(self, queues: Sequence[str] | None = None) -> BrokerStats:
        """Counts per queue (all known queues when None) and the live workers.

        A backend that keeps the default worker registry lists the workers with
        ``registered_workers()``.
        """

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The queue's dead letters, oldest first, at most ``limit``."""
        raise unsupported(self, "listing dead letters")

    async def remove_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        """Delete these dead letters (all of the queue's when None); return how many."""
        raise unsupported(self, "removing dead letters")

    async def purge(self, queue: str) -> int:
        """Delete the queue's ready and delayed messages; return how many."""
        raise unsupported(self, "purging a queue")

    async def promote_scheduled(self, queue: str | None = None) -> int:
        """Make every delayed message (of ``queue``, or all) ready now; return how many."""
        raise unsupported(self, "promoting delayed messages")
