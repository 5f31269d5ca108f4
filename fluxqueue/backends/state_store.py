"""Group 2 of the broker contract: the state store. Four methods every backend writes.

Per task id the store keeps a :class:`~fluxqueue.state.State` (a status string and an
opaque blob, kept ``ttl`` seconds) and a list of streamed outputs. Handles read it, the
worker writes it; the transport writes it too, in the same atomic step as each lease ends.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Collection

from fluxqueue.state import State

__all__ = ["StateStore"]


class StateStore(ABC):
    """Task states and outputs: set_state, get_state, add_output, get_outputs.

    ``wait_state`` has a default that polls ``get_state``.
    """

    @abstractmethod
    async def set_state(self, task_id: str, state: State) -> None:
        """Write a task's state (replacing the previous one), kept for ``state.ttl``."""

    @abstractmethod
    async def get_state(self, task_id: str) -> State | None:
        """A task's state, or None for an unknown or expired id."""

    async def wait_state(
        self, task_id: str, statuses: Collection[str], timeout: float | None
    ) -> State | None:
        """Wait until the task's status is one of ``statuses``; the last state on timeout.

        The default polls with a growing interval (2 ms to 100 ms); a backend with
        notifications overrides it.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.002
        while True:
            state = await self.get_state(task_id)
            if state is not None and state.status in statuses:
                return state
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return state
                delay = min(delay, left)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    @abstractmethod
    async def add_output(self, task_id: str, item: bytes, ttl: float | None) -> None:
        """Append one streamed item (a generator task's yield) to the task's outputs."""

    @abstractmethod
    async def get_outputs(self, task_id: str, start: int = 0) -> list[bytes]:
        """The task's outputs from index ``start`` on, in the order they were added."""
