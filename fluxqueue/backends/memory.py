"""The in-memory broker: the whole contract inside one process, for tests and examples.

``FluxQueue("memory://")`` gets a fresh, private store. It keeps every guarantee of the
contract (leases, redelivery, priorities, delays, results, streams, abort, dead letters),
so a test that passes here exercises the same worker logic as production. Nothing survives
the process and nothing is shared with other processes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from fluxqueue.backends.base import (
    AbortOutcome,
    Broker,
    BrokerStats,
    DeadLetter,
    QueueStats,
    WorkerInfo,
)
from fluxqueue.backends.coordination import check_claim, check_release, check_tally
from fluxqueue.errors import ConfigurationError
from fluxqueue.message import Delivery, Message
from fluxqueue.state import State, initial_state

__all__ = ["MemoryBroker"]

_READY, _SCHEDULED, _LEASED = "ready", "scheduled", "leased"
#: Expired claims and tallies are dropped when a new key arrives past this many.
_SWEEP_AT = 1024


@dataclass(slots=True)
class _Entry:
    queue: str
    data: bytes
    priority: int
    seq: int
    where: str
    eta: float = 0.0
    deadline: float = 0.0
    receipt: str = ""


class MemoryBroker(Broker):
    persistent = False

    def __init__(self, url: str = "memory://") -> None:
        super().__init__(url)
        if self.options:
            raise ConfigurationError(
                f"memory:// does not understand the option(s) {', '.join(sorted(self.options))}"
            )
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._entries: dict[str, _Entry] = {}
        self._leased: dict[str, _Entry] = {}
        self._ready: dict[str, list[tuple[int, int, str]]] = {}
        self._scheduled: list[tuple[float, int, str]] = []
        self._states: dict[str, tuple[State, float]] = {}
        self._outputs: dict[str, list[bytes]] = {}
        self._dead: dict[str, dict[str, DeadLetter]] = {}
        self._abort: set[str] = set()
        self._workers: dict[str, tuple[WorkerInfo, float]] = {}
        self._claims: dict[str, tuple[str, float]] = {}  # key -> (token, expires)
        self._tallies: dict[str, tuple[set[str], float]] = {}  # key -> (members, expires)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    # -- internals (call with the lock held) -------------------------------------------

    def _place(self, task_id: str, entry: _Entry, now: float) -> None:
        self._entries[task_id] = entry
        self._leased.pop(task_id, None)
        if entry.eta > now:
            entry.where = _SCHEDULED
            heapq.heappush(self._scheduled, (entry.eta, entry.seq, task_id))
        else:
            entry.where = _READY
            heap = self._ready.setdefault(entry.queue, [])
            heapq.heappush(heap, (entry.priority, entry.seq, task_id))

    def _store(self, message: Message, data: bytes, now: float) -> None:
        entry = _Entry(message.queue, data, message.priority, next(self._seq), _READY)
        entry.eta = message.eta or 0.0
        self._place(message.id, entry, now)

    def _valid(self, task_id: str, seq: int, where: str) -> bool:
        entry = self._entries.get(task_id)
        return entry is not None and entry.seq == seq and entry.where == where

    def _housekeep(self, now: float) -> None:
        """Promote due delayed messages and take back expired leases."""
        while self._scheduled and self._scheduled[0][0] <= now:
            _, seq, task_id = heapq.heappop(self._scheduled)
            if self._valid(task_id, seq, _SCHEDULED):
                entry = self._entries[task_id]
                entry.eta = 0.0
                entry.seq = next(self._seq)
                self._place(task_id, entry, now)
        for task_id, entry in list(self._leased.items()):
            if entry.deadline <= now:
                entry.seq = next(self._seq)
                entry.eta = 0.0
                self._place(task_id, entry, now)

    def _next_wakeup(self, now: float) -> float | None:
        times = [e.deadline for e in self._leased.values()]
        if self._scheduled:
            times.append(self._scheduled[0][0])
        return min(times) - now if times else None

    def _set_state(self, task_id: str, state: State, now: float) -> None:
        expires = now + state.ttl if state.ttl else float("inf")
        self._states[task_id] = (state, expires)

    def _end_lease(self, delivery: Delivery) -> None:
        entry = self._leased.pop(delivery.task_id, None)
        if entry is not None and self._entries.get(delivery.task_id) is entry:
            del self._entries[delivery.task_id]
        self._abort.discard(delivery.task_id)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)

    # -- producing -------------------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message], ttl: float | None = None) -> None:
        encoded = [(m, m.encode(), initial_state(m, ttl)) for m in messages]
        now = time.time()
        with self._lock:
            for message, data, state in encoded:
                self._store(message, data, now)
                self._set_state(message.id, state, now)
            self._wake()

    # -- consuming -------------------------------------------------------------------

    async def fetch(self, queues: Sequence[str], count: int, timeout: float) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        while True:
            now = time.time()
            with self._lock:
                self._housekeep(now)
                taken = self._take(queues, count, now)
                if taken:
                    return taken
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                wakeup = self._next_wakeup(now)
                future: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, future))
            wait = left if wakeup is None else max(0.0, min(left, wakeup))
            try:
                await asyncio.wait_for(future, wait)
            except asyncio.TimeoutError:
                pass
            finally:
                with self._lock:
                    if (loop, future) in self._waiters:
                        self._waiters.remove((loop, future))

    def _take(self, queues: Sequence[str], count: int, now: float) -> list[Delivery]:
        taken: list[Delivery] = []
        while len(taken) < count:
            best: tuple[int, int, str] | None = None
            best_queue = ""
            for queue in queues:
                heap = self._ready.get(queue)
                while heap and not self._valid(heap[0][2], heap[0][1], _READY):
                    heapq.heappop(heap)
                if heap and (best is None or heap[0][:2] < best[:2]):
                    best, best_queue = heap[0], queue
            if best is None:
                break
            heapq.heappop(self._ready[best_queue])
            task_id = best[2]
            entry = self._entries[task_id]
            entry.where = _LEASED
            entry.deadline = now + self.visibility_timeout
            entry.receipt = uuid.uuid4().hex
            self._leased[task_id] = entry
            taken.append(Delivery(task_id, entry.queue, entry.data, entry.receipt))
        return taken

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        deadline = time.time() + self.visibility_timeout
        with self._lock:
            for delivery in deliveries:
                entry = self._entries.get(delivery.task_id)
                if entry is not None and entry.where == _LEASED:
                    entry.deadline = deadline

    async def ack(self, delivery: Delivery, state: State) -> None:
        now = time.time()
        with self._lock:
            self._end_lease(delivery)
            self._set_state(delivery.task_id, state, now)

    async def requeue(self, delivery: Delivery, message: Message, state: State) -> None:
        data = message.encode()
        now = time.time()
        with self._lock:
            self._end_lease(delivery)
            self._store(message, data, now)
            self._set_state(message.id, state, now)
            self._wake()

    async def dead_letter(self, delivery: Delivery, reason: str, state: State) -> None:
        now = time.time()
        letter = DeadLetter(delivery.task_id, delivery.queue, delivery.data, reason, now)
        with self._lock:
            self._end_lease(delivery)
            dead = self._dead.setdefault(delivery.queue, {})
            dead.pop(delivery.task_id, None)
            dead[delivery.task_id] = letter
            self._set_state(delivery.task_id, state, now)

    # -- task state ------------------------------------------------------------------

    async def set_state(self, task_id: str, state: State) -> None:
        now = time.time()
        with self._lock:
            self._set_state(task_id, state, now)

    async def get_state(self, task_id: str) -> State | None:
        with self._lock:
            found = self._states.get(task_id)
            if found is None:
                return None
            if found[1] <= time.time():
                del self._states[task_id]
                self._outputs.pop(task_id, None)
                return None
            return found[0]

    async def add_output(self, task_id: str, item: bytes, ttl: float | None) -> None:
        with self._lock:
            self._outputs.setdefault(task_id, []).append(item)

    async def get_outputs(self, task_id: str, start: int = 0) -> list[bytes]:
        with self._lock:
            return list(self._outputs.get(task_id, ())[start:])

    # -- aborting --------------------------------------------------------------------

    async def abort(self, task_id: str) -> AbortOutcome:
        now = time.time()
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                return "missing"
            if entry.where == _LEASED:
                self._abort.add(task_id)
                return "requested"
            del self._entries[task_id]
            found = self._states.get(task_id)
            if found is not None:
                self._states[task_id] = (State("ABORTED", found[0].data, found[0].ttl), found[1])
            else:
                self._set_state(task_id, State("ABORTED", b""), now)
            return "aborted"

    async def abort_requested(self, task_ids: Sequence[str]) -> set[str]:
        with self._lock:
            return self._abort.intersection(task_ids)

    # -- dead letters ----------------------------------------------------------------

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        with self._lock:
            return list(self._dead.get(queue, {}).values())[:limit]

    async def remove_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        with self._lock:
            dead = self._dead.get(queue, {})
            if task_ids is None:
                count = len(dead)
                dead.clear()
                return count
            return sum(dead.pop(task_id, None) is not None for task_id in task_ids)

    # -- administration --------------------------------------------------------------

    async def stats(self, queues: Sequence[str] | None = None) -> BrokerStats:
        now = time.time()
        with self._lock:
            names = set(self._ready) | set(self._dead)
            names.update(e.queue for e in self._entries.values())
            found = {name: QueueStats(name) for name in (queues or sorted(names))}
            for entry in self._entries.values():
                stats = found.get(entry.queue)
                if stats is None:
                    continue
                if entry.where == _READY:
                    stats.ready[entry.priority] = stats.ready.get(entry.priority, 0) + 1
                elif entry.where == _SCHEDULED:
                    stats.scheduled += 1
                else:
                    stats.running += 1
            for name, stats in found.items():
                stats.dead = len(self._dead.get(name, {}))
            return BrokerStats(list(found.values()), self._live_workers(now))

    async def purge(self, queue: str) -> int:
        with self._lock:
            doomed = [
                task_id
                for task_id, entry in self._entries.items()
                if entry.queue == queue and entry.where != _LEASED
            ]
            for task_id in doomed:
                del self._entries[task_id]
            return len(doomed)

    async def promote_scheduled(self, queue: str | None = None) -> int:
        now = time.time()
        count = 0
        with self._lock:
            for task_id, entry in list(self._entries.items()):
                if entry.where == _SCHEDULED and queue in (None, entry.queue):
                    entry.eta = 0.0
                    entry.seq = next(self._seq)
                    self._place(task_id, entry, now)
                    count += 1
            if count:
                self._wake()
        return count

    async def heartbeat(self, worker: WorkerInfo, ttl: float) -> None:
        now = time.time()
        worker.last_seen = now
        with self._lock:
            self._workers[worker.id] = (worker, now + ttl)

    async def remove_worker(self, worker_id: str) -> None:
        with self._lock:
            self._workers.pop(worker_id, None)

    async def registered_workers(self) -> list[WorkerInfo]:
        with self._lock:
            return self._live_workers(time.time())

    def _live_workers(self, now: float) -> list[WorkerInfo]:
        alive = [w for w, expires in self._workers.values() if expires > now]
        return sorted(alive, key=lambda w: w.id)

    # -- coordination ----------------------------------------------------------------

    async def claim(self, key: str, token: str, ttl: float) -> str:
        check_claim(key, token, ttl)
        now = time.monotonic()
        with self._lock:
            held = self._claims.get(key)
            if held is None or held[1] <= now or held[0] == token:
                if held is None and len(self._claims) >= _SWEEP_AT:
                    self._claims = {k: v for k, v in self._claims.items() if v[1] > now}
                self._claims[key] = (token, now + ttl)
                return token
            return held[0]

    async def release(self, key: str, token: str) -> bool:
        check_release(key, token)
        now = time.monotonic()
        with self._lock:
            held = self._claims.get(key)
            if held is None or held[1] <= now:
                self._claims.pop(key, None)
                return False
            if held[0] != token:
                return False
            del self._claims[key]
            return True

    async def tally(self, key: str, member: str, ttl: float) -> int:
        check_tally(key, member, ttl)
        now = time.monotonic()
        with self._lock:
            found = self._tallies.get(key)
            members = found[0] if found is not None and found[1] > now else set()
            if found is None and len(self._tallies) >= _SWEEP_AT:
                self._tallies = {k: v for k, v in self._tallies.items() if v[1] > now}
            members.add(member)
            self._tallies[key] = (members, now + ttl)
            return len(members)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
