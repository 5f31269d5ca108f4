"""The key layout. Every key of one namespace starts with ``{prefix}:``.

The braces are a Redis Cluster hash tag: every key of a namespace hashes to the same slot,
so each Lua script may touch any of them, on a single server or on a cluster. The price is
that one namespace lives on one cluster shard; spread load with several prefixes (one per
application or group of queues), not with more shards per prefix.

This is the one list of the keys the Redis backend writes. Python code builds key names
only through :class:`Keys`; ``_lib.lua`` builds the same names inside scripts (``qkey``,
``mkey``, ``skey`` and ``BASE .. '<name>'``); keep the two in step.

A waiting task has no state hash: enqueue writes only the message, and ``get_state`` builds
the PENDING or SCHEDULED record from it (:func:`fluxqueue.state.initial_state`) until a
worker, an abort or a retry writes ``{p}:s:<id>``. Enqueueing an id again deletes its old
state hash, so the task reads as waiting again.

=============================  ======  ======================================================
key                            type    content
=============================  ======  ======================================================
``{p}:seq``                    string  counter giving FIFO order (and script routing key)
``{p}:queues``                 set     every queue name seen (for stats and promote-all)
``{p}:m:<id>``                 hash    d = encoded message, q = queue, p = priority,
                                       t = state ttl (ms, 0 = none) given at enqueue,
                                       n = number of leases so far (the delivery receipt)
``{p}:q:<queue>:ready``        zset    id -> priority * 1e12 + seq
``{p}:q:<queue>:incoming``     list    "<priority> <id>" entries that producers before
                                       round 8 wrote (one MULTI, no script), moved to
                                       ready by the next script that reads the ready
                                       set (``absorb`` in _lib.lua)
``{p}:q:<queue>:scheduled``    zset    id -> eta (ms since the epoch)
``{p}:q:<queue>:leased``       zset    id -> lease deadline (ms, Redis server clock)
``{p}:q:<queue>:wake``         list    tokens an idle fetch blocks on (BLPOP)
``{p}:q:<queue>:dead``         zset    id -> seq (oldest first)
``{p}:q:<queue>:dead:data``    hash    id -> encoded message
``{p}:q:<queue>:dead:info``    hash    id -> "<failed_at ms>:<reason>"
``{p}:s:<id>``                 hash    st = status, d = state blob, t = ttl; PEXPIRE ttl;
                                       m = the message of a task aborted while it waited
                                       (its record is derived from it, d is empty)
``{p}:o:<id>``                 list    streamed outputs; PEXPIRE ttl
``{p}:aborts``                 set     ids of leased tasks whose abort was requested
``{p}:workers``                hash    worker id -> JSON WorkerInfo
``{p}:workers:seen``           zset    worker id -> expiry (ms)
``{p}:c:<key>``                string  a claim (coordination.py): the holder's token; PX ttl
``{p}:t:<key>``                set     a tally (coordination.py): its distinct members;
                                       PEXPIRE ttl
=============================  ======  ======================================================
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["Keys"]


class Keys:
    """Key names for one namespace."""

    __slots__ = ("base", "route")

    def __init__(self, prefix: str) -> None:
        self.base = "{" + prefix + "}:"
        #: Passed as KEYS[1] to every script: it routes the call to the namespace's slot.
        self.route = self.base + "seq"

    def queue(self, queue: str, kind: str) -> str:
        return f"{self.base}q:{queue}:{kind}"

    def wake(self, queues: Sequence[str]) -> list[str]:
        return [self.queue(q, "wake") for q in queues]

    def state(self, task_id: str) -> str:
        return f"{self.base}s:{task_id}"

    def outputs(self, task_id: str) -> str:
        return f"{self.base}o:{task_id}"

    def message(self, task_id: str) -> str:
        return f"{self.base}m:{task_id}"

    @property
    def aborts(self) -> str:
        return self.base + "aborts"

    def claim(self, key: str) -> str:
        return f"{self.base}c:{key}"

    def tally(self, key: str) -> str:
        return f"{self.base}t:{key}"
