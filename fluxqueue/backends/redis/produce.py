"""Producing on Redis: the one encoding of an enqueue, and the blocking path that sends it.

An enqueue is one call of ``enqueue.lua`` per :data:`ENQUEUE_CHUNK` messages;
:func:`enqueue_calls` builds their arguments whichever client sends them (the broker's
asyncio clients, a cluster, or :class:`SyncProducer` here).

:class:`SyncProducer` is what ``task.enqueue()`` and ``fq.enqueue_many()`` go through on a
single server, and it is written for that loop: the ``EVALSHA`` command of one message is
built as one tuple and packed by hiredis, sent on a blocking redis-py connection of this
process and its reply read with ``read_response``; redis-py's classes and hiredis's packer
are looked up once, and errors are translated only when there is one.
docs/benchmarks.md ("Round 9: the producer on redis-py") has what each of these is worth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fluxqueue.backends.redis.client import Clients, call_sync
from fluxqueue.backends.redis.keys import Keys
from fluxqueue.backends.redis.scripts import needing_eval, script
from fluxqueue.message import Message

__all__ = ["ENQUEUE_CHUNK", "SyncProducer", "enqueue_calls", "eta_ms", "ms"]

#: Messages per enqueue script call: large enough to amortise the round trip, small
#: enough that one call never blocks the server for long.
ENQUEUE_CHUNK = 2000


def ms(seconds: float | None) -> int:
    """A ttl or timeout in whole milliseconds for a script (0: none)."""
    return 0 if not seconds else max(1, round(seconds * 1000))


def eta_ms(eta: float | None) -> str:
    """An eta (seconds since the epoch) in milliseconds for a script ('': now)."""
    return "" if eta is None else repr(eta * 1000)


def enqueue_calls(messages: Sequence[Message], ttl: float | None) -> list[list[Any]]:
    """The arguments of one enqueue script call per ENQUEUE_CHUNK messages, after the
    namespace base (see enqueue.lua for the layout): the one encoding of an enqueue,
    whichever client sends it."""
    ttl_ms = ms(ttl)
    if len(messages) == 1:  # task.enqueue(): one group of one
        m = messages[0]
        return [[ttl_ms, 1, m.queue, m.priority, eta_ms(m.eta), 1, m.id, m.encode()]]
    calls: list[list[Any]] = []
    for start in range(0, len(messages), ENQUEUE_CHUNK):
        end = min(start + ENQUEUE_CHUNK, len(messages))
        args: list[Any] = [ttl_ms, end - start]
        group: Any = None
        count_at = 0
        for i in range(start, end):
            message = messages[i]
            route = (message.queue, message.priority, eta_ms(message.eta))
            if route != group:
                group, count_at = route, len(args) + 3
                args += [*route, 0]
            args[count_at] += 1
            args += [message.id, message.encode()]
        calls.append(args)
    return calls


class SyncProducer:
    """Enqueues from blocking code on a single server (not a cluster), through the
    blocking connections of :meth:`Clients.sync` (thread-safe and fork-safe there)."""

    def __init__(self, clients: Clients, keys: Keys) -> None:
        from hiredis import pack_command

        self._clients = clients
        self._pack: Callable[[tuple[Any, ...]], bytes] = pack_command
        enqueue = script("enqueue")
        self._source = enqueue.source
        #: What every enqueue command starts with: the script, its routing key, the base.
        self._head = ("EVALSHA", enqueue.sha, 1, keys.route, keys.base)

    def send(self, messages: Sequence[Message], ttl: float | None) -> None:
        """Enqueue ``messages`` (at least one); redis-py's errors come out as they are
        (the broker translates them)."""
        pack, head = self._pack, self._head
        calls = enqueue_calls(messages, ttl)
        packed = [pack((*head, *args)) for args in calls]
        connections = self._clients.sync()
        again = needing_eval(call_sync(connections, packed))
        if again:  # NOSCRIPT: first use, a restart, a failover
            tail = ("EVAL", self._source, *head[2:])
            needing_eval(call_sync(connections, [pack((*tail, *calls[i])) for i in again]))
