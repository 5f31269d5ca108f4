"""Group 1 of the broker contract: transport and lease. Six methods every backend writes.

A transport stores messages, hands them to consumers under a lease, and ends each lease in
one of three ways. It never runs a serializer and never decides policy: retries, timeouts
and aborts are decided by the worker runtime, the same way for every backend, which then
tells the transport what to store.

Guarantees (proven by :class:`fluxqueue.testing.contract.TransportContract`):

* **At least once.** ``fetch`` leases a message, it does not remove it. The lease lasts
  ``visibility_timeout`` seconds and ``extend`` renews it. A message whose lease expires
  (its worker died) is delivered again by a later ``fetch``. Only ``ack``, ``requeue`` and
  ``dead_letter`` end a lease, and each writes the task's state in the same atomic step,
  so a task never shows SUCCESS without its ack, nor the other way round. That is why the
  transport needs the state store (:mod:`.state_store`) of the same backend.
* **Order.** Within a queue, lower ``priority`` first (0 = CRITICAL ... 3 = LOW), then first
  in, first out. A message whose ``eta`` lies in the future waits in the broker (not in a
  worker) and becomes ready when due, even if no worker was running at that moment.
* **Sharing.** Any number of producers and consumers, in any number of processes (for
  backends that cross processes), may use one broker; a message is leased to one consumer
  at a time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fluxqueue._bridge import run_sync
from fluxqueue.message import Delivery, Message
from fluxqueue.state import State

__all__ = ["Transport"]


class Transport(ABC):
    """Queue and lease: enqueue, fetch, extend, ack, requeue, dead_letter.

    ``ack_many`` and ``enqueue_sync`` have defaults built on the others; a backend
    overrides them only to save round trips or a thread hop.
    """

    #: How long a fetched message stays leased without :meth:`extend`, in seconds.
    visibility_timeout: float

    # -- producing -------------------------------------------------------------------

    @abstractmethod
    async def enqueue(self, messages: Sequence[Message], ttl: float | None = None) -> None:
        """Store each message, ready or delayed until ``message.eta``.

        Many messages are stored in as few round trips as the backend allows. A message
        whose id is already stored replaces it, and the task's state starts over: until a
        worker writes another one, ``get_state`` returns what
        :func:`~fluxqueue.state.initial_state` builds from the message and ``ttl`` (PENDING,
        or SCHEDULED while the eta lies ahead). A backend may store that record (kept
        ``ttl`` seconds, None: until replaced) or build it from the stored message when
        asked (kept as long as the message is); the ABORTED state of a task aborted while
        it waited is kept up to ``ttl`` seconds.
        """

    def enqueue_sync(self, messages: Sequence[Message], ttl: float | None = None) -> None:
        """:meth:`enqueue` for a synchronous caller (``task.enqueue()``, ``fq.enqueue_many``).

        The default runs :meth:`enqueue` on the bridge thread's event loop. A backend with a
        blocking client overrides it to skip that thread hop (a few hundred microseconds per
        call); an override must be thread-safe and fork-safe (a forked child opens its own
        connections).
        """
        run_sync(self.enqueue(messages, ttl))

    # -- consuming -------------------------------------------------------------------

    @abstractmethod
    async def fetch(self, queues: Sequence[str], count: int, timeout: float) -> list[Delivery]:
        """Lease up to ``count`` ready messages from ``queues``.

        Returns as soon as at least one message is available, waiting up to ``timeout``
        seconds for the first (blocking on the backend, not sleeping in a loop); returns an
        empty list when none came. Before choosing, due delayed messages become ready and
        expired leases are taken back, so a dead worker's messages are delivered again.
        """

    @abstractmethod
    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Renew these leases for another ``visibility_timeout``. Unknown ones are ignored."""

    @abstractmethod
    async def ack(self, delivery: Delivery, state: State) -> None:
        """Atomically remove the message and its lease and write its final ``state``."""

    async def ack_many(
        self,
        acks: Sequence[tuple[Delivery, State]],
        started: Sequence[tuple[str, State]] = (),
    ) -> None:
        """Write the ``started`` states (as ``set_state``), then :meth:`ack` each delivery.

        Why: a worker running many short tasks finishes several per event-loop turn, and
        one round trip for all of them (instead of two per task) is most of its speed.
        Each ack stays atomic with its own state, exactly as :meth:`ack`; the batch as a
        whole need not be. The default makes one call per item; a backend overrides it to
        use one round trip (Redis: one script; SQLite: one transaction).
        """
        for task_id, state in started:
            await self.set_state(task_id, state)
        for delivery, state in acks:
            await self.ack(delivery, state)

    if TYPE_CHECKING:
        # A transport always comes with its backend's state store (see ``Broker``), which
        # ``ack_many`` writes the started states to.
        async def set_state(self, task_id: str, state: State) -> None: ...

    @abstractmethod
    async def requeue(self, delivery: Delivery, message: Message, state: State) -> None:
        """Atomically end the lease and store ``message`` again (same id), with ``state``.

        Used for retries (``message.attempt`` raised, ``message.eta`` set to the backoff) and
        for handing back unfinished work at shutdown.
        """

    @abstractmethod
    async def dead_letter(self, delivery: Delivery, reason: str, state: State) -> None:
        """Atomically move the message to its queue's dead letters and write ``state``."""
