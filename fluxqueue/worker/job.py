"""A leased message on its way through the worker: its phase, its slot, how to cancel it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fluxqueue.message import Delivery, Message
    from fluxqueue.worker.threads import ThreadSlot

__all__ = ["Job"]


class Job:
    """A leased message being worked on."""

    __slots__ = (
        "cancel_reason", "delivery", "message", "phase", "released", "runner", "slot", "waiter",
    )  # fmt: skip

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.message: Message | None = None
        self.runner: asyncio.Task[None] | None = None  # the asyncio task processing it
        self.phase = "new"  # then "waiting" for a slot, "running" its body, "done"
        self.waiter: asyncio.Future[bool] | None = None  # while waiting for a slot
        self.slot: ThreadSlot | None = None  # a sync body's thread
        self.released = False  # no longer counted against the worker's capacity
        self.cancel_reason: str | None = None  # "abort", "timeout" or "shutdown"

    def waiting(self) -> bool:
        return self.phase in ("new", "waiting")

    def cancel(self, reason: str) -> None:
        """Stop the body if it runs; a job that has not started will not start."""
        if self.cancel_reason is not None:
            return
        self.cancel_reason = reason
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(False)
        if self.phase == "running":
            if self.slot is not None:
                self.slot.interrupt()
            if self.runner is not None:
                self.runner.cancel()
