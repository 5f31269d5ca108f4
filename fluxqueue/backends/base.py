"""The broker contract. This one class is everything a backend implements.

A broker stores messages, hands them to workers under a lease, and keeps per-task state.
It never runs a serializer and never decides policy (retries, timeouts, aborts): the worker
runtime does that the same way for every backend and tells the broker what to store.

Guarantees every implementation gives, proven by :mod:`fluxqueue.testing.contract`:

* **At least once.** ``fetch`` leases a message, it does not remove it. The lease lasts
  ``visibility_timeout`` seconds and ``extend`` renews it. A message whose lease expires
  (its worker died) is delivered again by a later ``fetch``. Only ``ack``, ``requeue`` and
  ``dead_letter`` end a lease, and each of them writes the task's state in the same atomic
  step, so a task never shows SUCCESS without its ack, nor the other way round.
* **Order.** Within a queue, lower ``priority`` first (0 = CRITICAL ... 3 = LOW), then first
  in, first out. A message whose ``eta`` lies in the future waits in the broker (not in a
  worker) and becomes ready when due, even if no worker was running at that moment.
* **Sharing.** Any number of producers and consumers, in any number of processes (for
  backends that cross processes), may use one broker; a message is leased to one consumer
  at a time.

Concurrency model: methods are coroutines and may be called from several event loops in one
process (the app's loop, the thread that serves synchronous callers, a worker's loop). A
backend that holds connections keeps them per event loop. Instances must be safe to share
between threads.

Errors: a backend raises :class:`~fluxqueue.errors.BrokerConnectionError` when it cannot
reach its server (saying which host it tried, password masked) and
:class:`~fluxqueue.errors.BrokerError` for other failures.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from fluxqueue._bridge import run_sync
from fluxqueue._url import float_option, mask_url, query_options
from fluxqueue.message import Delivery, Message
from fluxqueue.state import State

__all__ = [
    "DEFAULT_VISIBILITY_TIMEOUT",
    "AbortOutcome",
    "Broker",
    "BrokerStats",
    "DeadLetter",
    "QueueStats",
    "WorkerInfo",
]

DEFAULT_VISIBILITY_TIMEOUT = 30.0

#: What :meth:`Broker.abort` did: removed a waiting message ("aborted"), flagged a leased
#: one for its worker to cancel ("requested"), or found nothing to abort ("missing").
AbortOutcome = Literal["aborted", "requested", "missing"]

FINAL_STATUSES = frozenset({"SUCCESS", "FAILURE", "ABORTED"})


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that will not be retried, with why."""

    task_id: str
    queue: str
    data: bytes
    reason: str
    failed_at: float


@dataclass(slots=True)
class QueueStats:
    """Counts for one queue. ``ready`` maps priority to the number of ready messages."""

    name: str
    ready: dict[int, int] = field(default_factory=dict)
    scheduled: int = 0
    running: int = 0
    dead: int = 0

    @property
    def total_ready(self) -> int:
        return sum(self.ready.values())


@dataclass(slots=True)
class WorkerInfo:
    """A live worker process, as it announces itself with :meth:`Broker.heartbeat`."""

    id: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: float
    last_seen: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerInfo:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(slots=True)
class BrokerStats:
    queues: list[QueueStats]
    workers: list[WorkerInfo]


class Broker(ABC):
    """Base class of every backend. Subclasses are registered under a URL scheme.

    The constructor takes the broker URL; query-string options are in ``self.options``
    (``visibility_timeout`` is already taken out and applied). A subclass pops the options
    it understands and should reject the rest with a
    :class:`~fluxqueue.errors.ConfigurationError` naming them.
    """

    #: How long a fetched message stays leased without :meth:`extend`, in seconds.
    visibility_timeout: float
    #: True when messages survive the process and are shared between processes.
    persistent: ClassVar[bool] = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.options = query_options(url)
        self.visibility_timeout = float_option(
            self.options, "visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT, url
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {mask_url(self.url)}>"

    # -- producing -------------------------------------------------------------------

    @abstractmethod
    async def enqueue(self, messages: Sequence[Message], ttl: float | None = None) -> None:
        """Store each message, ready or delayed until ``message.eta``.

        Many messages are stored in as few round trips as the backend allows. A message
        whose id is already stored replaces it, and the task's state starts over: until a
        worker writes another one, :meth:`get_state` returns what
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
        """Write the ``started`` states (as :meth:`set_state`), then :meth:`ack` each delivery.

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

    @abstractmethod
    async def requeue(self, delivery: Delivery, message: Message, state: State) -> None:
        """Atomically end the lease and store ``message`` again (same id), with ``state``.

        Used for retries (``message.attempt`` raised, ``message.eta`` set to the backoff) and
        for handing back unfinished work at shutdown.
        """

    @abstractmethod
    async def dead_letter(self, delivery: Delivery, reason: str, state: State) -> None:
        """Atomically move the message to its queue's dead letters and write ``state``."""

    # -- task state ------------------------------------------------------------------

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

        The default polls with a growing interval; a backend with notifications overrides it.
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

    # -- aborting --------------------------------------------------------------------

    @abstractmethod
    async def abort(self, task_id: str) -> AbortOutcome:
        """Abort a task.

        A waiting (ready or delayed) message is removed and its status set to ABORTED:
        "aborted". A leased message is flagged for its worker, which stops it: "requested".
        Otherwise (unknown or finished): "missing".
        """

    @abstractmethod
    async def abort_requested(self, task_ids: Sequence[str]) -> set[str]:
        """Which of these (leased) tasks have an abort request waiting."""

    # -- dead letters ----------------------------------------------------------------

    @abstractmethod
    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The queue's dead letters, oldest first, at most ``limit``."""

    @abstractmethod
    async def remove_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        """Delete these dead letters (all of the queue's when None); return how many."""

    # -- administration --------------------------------------------------------------

    @abstractmethod
    async def stats(self, queues: Sequence[str] | None = None) -> BrokerStats:
        """Counts per queue (all known queues when None) and the live workers."""

    @abstractmethod
    async def purge(self, queue: str) -> int:
        """Delete the queue's ready and delayed messages; return how many."""

    @abstractmethod
    async def promote_scheduled(self, queue: str | None = None) -> int:
        """Make every delayed message (of ``queue``, or all) ready now; return how many."""

    @abstractmethod
    async def heartbeat(self, worker: WorkerInfo, ttl: float) -> None:
        """Record that ``worker`` is alive for the next ``ttl`` seconds."""

    @abstractmethod
    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker that stopped."""

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections and files. The broker may be used again afterwards."""
