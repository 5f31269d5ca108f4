"""A complete broker in one small file: the contract's 16 methods, and nothing else.

It keeps everything in this process (a dict per store name: ``tiny://<name>``), so it is
a teaching example, not a backend to deploy. Everything not written here comes from the
groups' defaults: ``ack_many``, ``enqueue_sync``, ``wait_state``, the worker registry
(built on the state store and ``claim``), and the optional admin operations, which raise
UnsupportedOperation. Run it: python examples/tiny_broker.py
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from fluxqueue.plugin_api import (
    AbortOutcome,
    Broker,
    BrokerStats,
    ConfigurationError,
    Delivery,
    Message,
    QueueStats,
    State,
    check_claim,
    check_release,
    check_tally,
    initial_state,
)


@dataclass
class Entry:
    queue: str
    priority: int
    seq: int
    data: bytes
    due: float  # ready from (waiting), or lease end (leased)
    receipt: str = ""  # non-empty while leased
    abort: bool = False


@dataclass
class Store:
    lock: threading.Lock = field(default_factory=threading.Lock)
    seq: int = 0
    messages: dict[str, Entry] = field(default_factory=dict)
    states: dict[str, tuple[State, float]] = field(default_factory=dict)
    outputs: dict[str, list[bytes]] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)  # queue -> dead letters
    claims: dict[str, tuple[str, float]] = field(default_factory=dict)
    tallies: dict[str, tuple[set[str], float]] = field(default_factory=dict)


STORES: dict[str, Store] = {}


class TinyBroker(Broker):
    persistent = False

    def __init__(self, url: str) -> None:
        super().__init__(url)  # reads visibility_timeout from the URL
        if self.options:
            raise ConfigurationError(f"tiny:// has no option(s) {', '.join(self.options)}")
        self.store = STORES.setdefault(url.split("://", 1)[1].split("?")[0], Store())

    # -- transport -------------------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message], ttl: float | None = None) -> None:
        with self.store.lock:
            for m in messages:
                self._put(m, initial_state(m, ttl))

    def _put(self, m: Message, state: State) -> None:
        s = self.store
        s.seq += 1
        s.messages[m.id] = Entry(m.queue, m.priority, s.seq, m.encode(), m.eta or 0.0)
        self._set(m.id, state)

    async def fetch(self, queues: Sequence[str], count: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while True:
            with self.store.lock:
                taken = self._take(queues, count)
            if taken or time.monotonic() >= deadline:
                return taken
            await asyncio.sleep(0.01)  # a real backend blocks on its server instead

    def _take(self, queues: Sequence[str], count: int) -> list[Delivery]:
        now = time.time()
        ready = sorted(
            (e.priority, e.seq, task_id)
            for task_id, e in self.store.messages.items()
            if e.queue in queues and e.due <= now  # waiting and due, or its lease expired
        )
        taken = []
        for _, _, task_id in ready[:count]:
            entry = self.store.messages[task_id]
            entry.receipt, entry.due = uuid.uuid4().hex, now + self.visibility_timeout
            taken.append(Delivery(task_id, entry.queue, entry.data, entry.receipt))
        return taken

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        with self.store.lock:
            for d in deliveries:
                entry = self.store.messages.get(d.task_id)
                if entry is not None and entry.receipt == d.receipt:
                    entry.due = time.time() + self.visibility_timeout

    async def ack(self, delivery: Delivery, state: State) -> None:
        with self.store.lock:
            self._end_lease(delivery)
            self._set(delivery.task_id, state)

    async def requeue(self, delivery: Delivery, message: Message, state: State) -> None:
        with self.store.lock:
            self._end_lease(delivery)
            self._put(message, state)

    async def dead_letter(self, delivery: Delivery, reason: str, state: State) -> None:
        with self.store.lock:
            self._end_lease(delivery)
            self.store.dead[delivery.queue] = self.store.dead.get(delivery.queue, 0) + 1
            self._set(delivery.task_id, state)

    def _end_lease(self, delivery: Delivery) -> None:
        entry = self.store.messages.get(delivery.task_id)
        if entry is not None and entry.receipt == delivery.receipt:
            del self.store.messages[delivery.task_id]

    # -- state store -----------------------------------------------------------------

    def _set(self, task_id: str, state: State) -> None:
        expires = time.time() + state.ttl if state.ttl else float("inf")
        self.store.states[task_id] = (state, expires)

    async def set_state(self, task_id: str, state: State) -> None:
        with self.store.lock:
            self._set(task_id, state)

    async def get_state(self, task_id: str) -> State | None:
        with self.store.lock:
            state, expires = self.store.states.get(task_id, (None, 0.0))
            return state if expires > time.time() else None

    async def add_output(self, task_id: str, item: bytes, ttl: float | None) -> None:
        with self.store.lock:
            self.store.outputs.setdefault(task_id, []).append(item)

    async def get_outputs(self, task_id: str, start: int = 0) -> list[bytes]:
        with self.store.lock:
            return self.store.outputs.get(task_id, [])[start:]

    # -- coordination ----------------------------------------------------------------

    async def claim(self, key: str, token: str, ttl: float) -> str:
        check_claim(key, token, ttl)
        with self.store.lock:
            holder, expires = self.store.claims.get(key, (token, 0.0))
            if expires <= time.monotonic() or holder == token:
                self.store.claims[key] = (token, time.monotonic() + ttl)
                return token
            return holder

    async def release(self, key: str, token: str) -> bool:
        check_release(key, token)
        with self.store.lock:
            holder, expires = self.store.claims.get(key, ("", 0.0))
            if holder != token or expires <= time.monotonic():
                return False
            del self.store.claims[key]
            return True

    async def tally(self, key: str, member: str, ttl: float) -> int:
        check_tally(key, member, ttl)
        with self.store.lock:
            members, expires = self.store.tallies.get(key, (set(), 0.0))
            if expires <= time.monotonic():
                members = set()
            members.add(member)
            self.store.tallies[key] = (members, time.monotonic() + ttl)
            return len(members)

    # -- aborts ----------------------------------------------------------------------

    async def abort(self, task_id: str) -> AbortOutcome:
        with self.store.lock:
            entry = self.store.messages.get(task_id)
            if entry is None:
                return "missing"
            if entry.receipt and entry.due > time.time():
                entry.abort = True
                return "requested"
            del self.store.messages[task_id]
            state, expires = self.store.states.get(task_id, (State("ABORTED", b""), 0.0))
            self.store.states[task_id] = (State("ABORTED", state.data, state.ttl), expires)
            return "aborted"

    async def abort_requested(self, task_ids: Sequence[str]) -> set[str]:
        with self.store.lock:
            messages = self.store.messages
            return {i for i in task_ids if i in messages and messages[i].abort}

    # -- queue admin -----------------------------------------------------------------

    async def stats(self, queues: Sequence[str] | None = None) -> BrokerStats:
        now = time.time()
        with self.store.lock:
            names = {e.queue for e in self.store.messages.values()} | set(self.store.dead)
            found = {name: QueueStats(name) for name in (queues or sorted(names))}
            for e in self.store.messages.values():
                q = found.get(e.queue)
                if q is None:
                    continue
                if e.due <= now:
                    q.ready[e.priority] = q.ready.get(e.priority, 0) + 1
                elif e.receipt:
                    q.running += 1
                else:
                    q.scheduled += 1
            for name, q in found.items():
                q.dead = self.store.dead.get(name, 0)
        return BrokerStats(list(found.values()), await self.registered_workers())


if __name__ == "__main__":
    from fluxqueue import FluxQueue, UnsupportedOperation

    fq = FluxQueue(TinyBroker("tiny://demo"))

    @fq.task()
    def add(a: int, b: int) -> int:
        return a + b

    handle = add(2, 3)
    fq.run_worker(burst=True)
    print("tiny broker: add(2, 3) ->", handle.result(timeout=5))
    try:
        fq.run(fq.admin.purge("default"))
    except UnsupportedOperation as exc:
        print("purge:", exc)
