"""Batches the worker's STARTED state writes and acks into one broker call per loop turn.

Why: with two round trips per task (a STARTED write, then the ack with the result), a
worker running short tasks spends most of its time waiting on the broker. Everything
written during one event-loop turn (and while the previous batch was on the wire) goes out
in one :meth:`~fluxqueue.backends.base.Broker.ack_many` call instead. Acks never wait on a
timer: a lone ack is flushed on the next loop turn, so latency does not grow.

STARTED writes alone wait up to ``STARTED_DELAY`` for an ack to travel with: most tasks
finish within that time, their final state replaces the STARTED record, and neither is
encoded nor sent twice. A longer task shows STARTED ``STARTED_DELAY`` after it began.

What stays the same: a task's ack still waits until the broker has stored it (the lease
ends, and the result is readable, before ``_succeed`` returns), and each ack is atomic with
its state. The STARTED write no longer holds the task back: the body runs while it is on
its way, and when a task finishes before its STARTED write was sent, that write is dropped
(the final state replaces it anyway). A STARTED write never lands after the task's final
state: batches go out one at a time, in order, and a lease-ending call made outside the
outbox (retry, dead letter, abort, hand-back) first calls :meth:`Outbox.forget`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fluxqueue.errors import BrokerConnectionError

if TYPE_CHECKING:
    from fluxqueue.backends.base import Broker
    from fluxqueue.message import Delivery
    from fluxqueue.state import State

log = logging.getLogger("fluxqueue.worker")

T = TypeVar("T")

#: How long STARTED writes wait for an ack to share a batch with (seconds).
STARTED_DELAY = 0.05


class Outbox:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._started: dict[str, Callable[[], State]] = {}
        self._acks: list[tuple[Delivery, State, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._in_flight: set[str] = set()
        self._batch_done: asyncio.Future[None] | None = None
        self._ack_waiter: asyncio.Future[None] | None = None

    def started(self, task_id: str, state: Callable[[], State]) -> None:
        """Queue a STARTED state write; returns at once. ``state`` builds the record when
        the batch goes out, so a task that finished by then costs no encoding at all."""
        self._started[task_id] = state
        self._kick()

    async def ack(self, delivery: Delivery, state: State) -> None:
        """Ack ``delivery`` with its final ``state``; returns once the broker has it."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks.append((delivery, state, done))
        self._kick()
        waiter = self._ack_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        await done

    async def forget(self, task_id: str) -> None:
        """Before another lease-ending call for ``task_id``: drop its unsent STARTED write,
        or wait for the batch that carries it."""
        self._started.pop(task_id, None)
        if task_id in self._in_flight and self._batch_done is not None:
            await asyncio.shield(self._batch_done)

    def _kick(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        broker = self.broker
        try:
            while self._started or self._acks:
                if not self._acks:
                    await self._ack_or_delay(loop)
                acks, self._acks = self._acks, []
                started, self._started = self._started, {}
                for delivery, _, _ in acks:
                    started.pop(delivery.task_id, None)  # the final state supersedes it
                self._in_flight = set(started)
                self._batch_done = loop.create_future()
                try:
                    await call_broker(
                        broker,
                        broker.ack_many,
                        [(delivery, state) for delivery, state, _ in acks],
                        [(task_id, state()) for task_id, state in started.items()],
                    )
                except BaseException as exc:  # cancelled too: no ack may wait forever
                    if not acks:
                        log.warning(
                            "could not record that %d task(s) started: %s", len(started), exc
                        )
                    _settle(acks, exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    _settle(acks, None)
                finally:
                    self._in_flight = set()
                    self._batch_done.set_result(None)
        finally:
            self._flusher = None

    async def _ack_or_delay(self, loop: asyncio.AbstractEventLoop) -> None:
        """Until an ack is queued or ``STARTED_DELAY`` has passed."""
        self._ack_waiter = waiter = loop.create_future()
        timer = loop.call_later(STARTED_DELAY, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._ack_waiter = None


def _settle(
    acks: list[tuple[Delivery, State, asyncio.Future[None]]], error: BaseException | None
) -> None:
    """Wake the callers of a batch's acks: with its error, if the batch failed."""
    for _, _, done in acks:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def call_broker(broker: Broker, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Call a lease-ending method of ``broker``, retrying while the broker is unreachable.

    Gives up after about a visibility timeout: by then the lease has expired and the
    message will be delivered again, so nothing is lost.
    """
    deadline = time.monotonic() + broker.visibility_timeout
    delay = 0.1
    while True:
        try:
            return await fn(*args)
        except BrokerConnectionError as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("broker unreachable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
