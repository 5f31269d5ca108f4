"""Group 4 of the broker contract: aborts. Two methods every backend writes.

Why no default: "aborted" promises that a waiting message will never run, which needs one
atomic step, "remove the message if no worker holds it, else flag it for its worker". The
other groups cannot build that step without a race (a worker could lease the message
between the check and the removal and run a task its caller was told is aborted). So the
step itself is the primitive; everything around it (cancelling the running body, the
ABORTED state, ``TaskAborted`` for the caller) is the worker's policy, the same for every
backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from fluxqueue.backends.records import AbortOutcome

__all__ = ["Aborts"]


class Aborts(ABC):
    """abort and abort_requested."""

    @abstractmethod
    async def abort(self, task_id: str) -> AbortOutcome:
        """Abort a task, atomically.

        A waiting (ready or delayed) message is removed and its status set to ABORTED,
        keeping the rest of its state: "aborted". A leased message is flagged for its
        worker, which stops it: "requested" (the flag ends with the lease). Otherwise
        (unknown or finished): "missing".
        """

    @abstractmethod
    async def abort_requested(self, task_ids: Sequence[str]) -> set[str]:
        """Which of these (leased) tasks have an abort request waiting. The worker asks
        about its running tasks a few times a second."""
