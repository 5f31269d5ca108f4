"""The Redis broker: the reference, production backend.

Every operation that changes more than one key is one Lua script (see ``scripts.py`` and
the ``*.lua`` files), so it is atomic on the server and costs one round trip. Time for
leases and delays is the Redis server's clock (``TIME`` inside scripts), so workers with
skewed clocks agree on when a lease expires. The key layout is in ``keys.py``; the
connections (redis-py's clients) are in ``client.py``.

An idle ``fetch`` does not poll: the fetch script returns how long until the next delayed
message or lease comes due, and the client blocks with ``BLPOP`` on the queues' wake-up
lists (which every enqueue pushes to) for at most that long, then runs the script again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from fluxqueue.backends.base import (
    AbortOutcome,
    Broker,
    BrokerStats,
    DeadLetter,
    QueueStats,
    WorkerInfo,
)
from fluxqueue.backends.redis.client import Clients, call, translated
from fluxqueue.backends.redis.config import RedisConfig, parse_url
from fluxqueue.backends.redis.coordination import RedisCoordination
from fluxqueue.backends.redis.keys import Keys
from fluxqueue.backends.redis.produce import SyncProducer, enqueue_calls
from fluxqueue.backends.redis.produce import eta_ms as _eta_ms
from fluxqueue.backends.redis.produce import ms as _ms
from fluxqueue.backends.redis.scripts import needing_eval, script
from fluxqueue.errors import BrokerError, MessageError
from fluxqueue.message import Delivery, Message
from fluxqueue.state import State, initial_state

__all__ = ["RedisBroker"]

log = logging.getLogger("fluxqueue.redis")

#: How long after a fetch that emptied its queues the next one may skip asking first.
DRAINED_FRESH = 0.05


def _due(next_ms: int) -> float:
    """The fetch script's ``next_ms`` (-1: nothing due) as a ``time.monotonic()`` time."""
    return math.inf if next_ms < 0 else time.monotonic() + next_ms / 1000


def _message_args(message: Message, state: State) -> list[Any]:
    return [
        message.id,
        message.queue,
        message.priority,
        _eta_ms(message.eta),
        message.encode(),
        state.status,
        state.data,
        _ms(state.ttl),
    ]


def _cancel_swallowed() -> bool:
    """True when this task was cancelled but the Redis call returned anyway.

    On Python 3.11, ``asyncio.wait_for`` (which redis-py wraps around some calls) returns
    the result instead of raising when the cancellation arrives just as the call is done,
    so ``task.cancel()`` would be lost and, say, a worker's shutdown would hang. The task
    still counts the request (``cancelling()``), so it is honoured here. Python 3.12's
    ``wait_for`` does not lose it.
    """
    if sys.version_info >= (3, 12):
        return False
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # 3.11+
    return bool(cancelling is not None and cancelling())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _worker_infos(records: list[bytes]) -> list[WorkerInfo]:
    return [WorkerInfo.from_dict(json.loads(record)) for record in records]


class RedisBroker(RedisCoordination, Broker):
    """Broker on Redis >= 6.2 or Redis Cluster. Connects lazily, one client per event loop."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0") -> None:
        super().__init__(url)
        self.config: RedisConfig = parse_url(url, self.options)
        self.keys = Keys(self.config.prefix)
        self._clients = Clients(self.config)
        self._secret: str | None = self.config.client_kwargs.get("password")
        self._vt_ms = _ms(self.visibility_timeout)
        self._online = True
        self._producer: SyncProducer | None = None
        #: queues -> (when, next due): the last fetch from them came back short (see fetch)
        self._drained: dict[tuple[str, ...], tuple[float, float]] = {}

    # -- plumbing --------------------------------------------------------------------

    @contextmanager
    def _errors(self, in_loop: bool = True) -> Iterator[None]:
        """Translate errors (see :meth:`_failure`)."""
        try:
            yield
        except Exception as exc:
            error = self._failure(exc)
            if error is exc:
                raise
            raise error from exc
        if not self._online:
            self._reached()
        if in_loop and _cancel_swallowed():
            raise asyncio.CancelledError()

    def _failure(self, exc: Exception) -> Exception:
        """What to raise for ``exc``: fluxqueue's error for redis-py's and the socket's
        (see ``client.translated``). Logs when Redis becomes unreachable, once."""
        error = translated(exc, self.config.where, self._secret, self._socket_timeout())
        if isinstance(error, BrokerError) and self._online:
            log.warning("Redis at %s is unreachable: %s", self.config.where, error)
            self._online = False
        return error

    def _reached(self) -> None:
        log.info("Redis at %s is reachable again", self.config.where)
        self._online = True

    def _script_args(self, args: list[Any]) -> tuple[list[str], list[Any]]:
        """A script's KEYS (the routing key) and ARGV (the namespace base first)."""
        return [self.keys.route], [self.keys.base, *args]

    def _evalsha(self, name: str, args: list[Any]) -> tuple[Any, ...]:
        return ("EVALSHA", script(name).sha, 1, self.keys.route, self.keys.base, *args)

    def _eval(self, name: str, args: list[Any]) -> tuple[Any, ...]:
        return ("EVAL", script(name).source, 1, self.keys.route, self.keys.base, *args)

    async def _run(self, name: str, args: list[Any]) -> Any:
        """Run script ``name`` on the running loop's pooled client."""
        if self.config.cluster:
            with self._errors():
                return await script(name).run(self._clients.pooled(), *self._script_args(args))
        (reply,) = await self._run_many(self._clients.pooled(), name, [args])
        return reply

    async def _run_dedicated(self, role: str, name: str, args: list[Any]) -> Any:
        """:meth:`_run` on the running loop's connection for the worker's hot path
        ``role`` (see ``client.Dedicated``); on a cluster, as any other call."""
        if self.config.cluster:
            return await self._run(name, args)
        (reply,) = await self._run_many(self._clients.dedicated(role), name, [args])
        return reply

    async def _run_many(
        self, client: Any, name: str, calls: list[list[Any]], first: tuple[Any, ...] = ()
    ) -> list[Any]:
        """Script ``name`` once per argument list in ``calls``, pipelined in one write
        (after the command ``first``, if given, whose reply is dropped); their replies."""
        commands = [self._evalsha(name, args) for args in calls]
        wait = 0.0
        if first:
            commands.insert(0, first)
            wait = float(first[-1])  # BLPOP's timeout
        with self._errors():
            replies = (await call(client, commands, wait))[len(first) > 0 :]
            again = needing_eval(replies)
            if again:
                evals = [self._eval(name, calls[i]) for i in again]
                for i, reply in zip(again, await call(client, evals), strict=True):
                    replies[i] = reply
                needing_eval(replies)  # raises an error reply
        return replies

    async def _command(self, *args: Any) -> Any:
        """Run one plain Redis command on the running loop's pooled client."""
        with self._errors():
            return await self._clients.pooled().execute_command(*args)

    # -- producing -------------------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message], ttl: float | None = None) -> None:
        if not messages:
            return
        calls = enqueue_calls(messages, ttl)
        if self.config.cluster:
            # redis-py refuses scripts in cluster pipelines: one call after the other.
            for args in calls:
                await self._run("enqueue", args)
            return
        await self._run_many(self._clients.pooled(), "enqueue", calls)

    def enqueue_sync(self, messages: Sequence[Message], ttl: float | None = None) -> None:
        """:meth:`enqueue` on this process's blocking connections, without the bridge
        thread's hop: the same calls (``enqueue_calls``), another transport (see
        ``produce.SyncProducer``)."""
        if self.config.cluster:  # no blocking cluster client is set up: use the bridge
            super().enqueue_sync(messages, ttl)
            return
        if not messages:
            return
        producer = self._producer or self._new_producer()
        try:
            producer.send(messages, ttl)
        except Exception as exc:
            error = self._failure(exc)
            if error is exc:
                raise
            raise error from exc
        if not self._online:
            self._reached()

    def _new_producer(self) -> SyncProducer:
        # Made on first use: a worker that never enqueues from blocking code needs none.
        # Two threads may both make one; they share the clients, so either will do.
        self._producer = SyncProducer(self._clients, self.keys)
        return self._producer

    # -- consuming -------------------------------------------------------------------

    async def fetch(self, queues: Sequence[str], count: int, timeout: float) -> list[Delivery]:
        if count <= 0 or not queues:
            return []
        now = time.monotonic()
        deadline = now + timeout
        args = [count, self._vt_ms, *queues]
        wake = self.keys.wake(queues)
        longest = self.config.block_timeout
        if self.config.cluster:  # BLPOP must come back before redis-py's socket timeout
            longest = min(longest, self._socket_timeout() * 0.8)
        key = tuple(queues)
        drained = self._drained.pop(key, None)
        if drained is not None and timeout > 0 and now - drained[0] < DRAINED_FRESH:
            # The fetch just before emptied these queues, and whatever was enqueued since
            # left a wake token: go straight to BLPOP (the fetch follows it in the same
            # write) instead of asking first. An idle worker that just got one message
            # thus makes one round trip per message, not two.
            reply, due = [], drained[1]
        else:
            reply = await self._run_dedicated("fetch", "fetch", args)
            due = _due(reply[0])
        while len(reply) <= 1:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                return []
            wait = min(left, longest, max(due - now, 0.0))
            # BLPOP 0 would block forever; Redis counts timeouts in milliseconds.
            reply = await self._lease_after_wake(args, wake, max(wait, 0.005))
            due = _due(reply[0])
        if len(reply) // 4 < count:  # fewer than asked: the queues are empty now
            self._drained[key] = (time.monotonic(), due)
        return [
            Delivery(_text(reply[i]), _text(reply[i + 1]), reply[i + 2], _text(reply[i + 3]))
            for i in range(1, len(reply), 4)
        ]

    async def _lease_after_wake(self, args: list[Any], wake: list[str], wait: float) -> Any:
        """The fetch script behind a ``BLPOP`` on the wake-up lists, pipelined in one
        write: Redis runs the script the moment BLPOP returns (a token, or its timeout),
        so a woken worker leases without another round trip. The BLPOP waits on a
        connection of its own, so it holds no pooled connection."""
        if self.config.cluster:  # the wake list and the script share a slot, not a node
            await self._command("BLPOP", *wake, round(wait, 3))
            return await self._run("fetch", args)
        blpop = ("BLPOP", *wake, f"{wait:.3f}")
        (reply,) = await self._run_many(self._clients.dedicated("fetch"), "fetch", [args], blpop)
        return reply

    def _socket_timeout(self) -> float:
        value = self.config.client_kwargs.get("socket_timeout")
        return float(value) if value else 10.0

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        args: list[Any] = [self._vt_ms]
        for delivery in deliveries:
            args += [delivery.queue, delivery.task_id]
        await self._run("extend", args)

    async def ack(self, delivery: Delivery, state: State) -> None:
        await self._run(
            "ack", [delivery.task_id, delivery.queue, state.status, state.data, _ms(state.ttl)]
        )

    async def ack_many(
        self,
        acks: Sequence[tuple[Delivery, State]],
        started: Sequence[tuple[str, State]] = (),
    ) -> None:
        if not acks and not started:
            return
        args: list[Any] = [len(started)]
        for task_id, state in started:
            args += [task_id, state.status, state.data, _ms(state.ttl)]
        for delivery, state in acks:
            args += [delivery.task_id, delivery.queue, state.status, state.data, _ms(state.ttl)]
        await self._run_dedicated("acks", "ack_many", args)

    async def requeue(self, delivery: Delivery, message: Message, state: State) -> None:
        await self._run(
            "requeue", [delivery.task_id, delivery.queue, *_message_args(message, state)]
        )

    async def dead_letter(self, delivery: Delivery, reason: str, state: State) -> None:
        await self._run(
            "dead_letter",
            [
                delivery.task_id,
                delivery.queue,
                delivery.data,
                reason,
                state.status,
                state.data,
                _ms(state.ttl),
            ],
        )

    # -- task state ------------------------------------------------------------------

    async def set_state(self, task_id: str, state: State) -> None:
        await self._run("set_state", [task_id, state.status, state.data, _ms(state.ttl)])

    async def get_state(self, task_id: str) -> State | None:
        """The state hash, or the state a waiting task's stored message implies (the
        enqueue script writes none; see get_state.lua)."""
        reply = await self._run("get_state", [task_id])
        if reply is None:
            return None
        status, data, ttl, stored = reply
        ttl_ms = int(ttl or 0)
        seconds = ttl_ms / 1000 if ttl_ms > 0 else None
        if stored is not None:
            try:
                derived = initial_state(Message.decode(stored), seconds)
            except MessageError:  # not written by fluxqueue: its status alone
                derived = State("PENDING", b"", seconds)
            data = derived.data
            status = status or derived.status
        return State(_text(status), data or b"", seconds)

    async def add_output(self, task_id: str, item: bytes, ttl: float | None) -> None:
        await self._run("add_output", [task_id, item, _ms(ttl)])

    async def get_outputs(self, task_id: str, start: int = 0) -> list[bytes]:
        items: list[bytes] = await self._command("LRANGE", self.keys.outputs(task_id), start, -1)
        return items

    # -- aborting --------------------------------------------------------------------

    async def abort(self, task_id: str) -> AbortOutcome:
        outcome = _text(await self._run("abort", [task_id]))
        assert outcome in ("aborted", "requested", "missing")
        return outcome  # type: ignore[return-value]

    async def abort_requested(self, task_ids: Sequence[str]) -> set[str]:
        if not task_ids:
            return set()
        flags = await self._command("SMISMEMBER", self.keys.aborts, *task_ids)
        return {task_id for task_id, flag in zip(task_ids, flags, strict=True) if flag}

    # -- dead letters ----------------------------------------------------------------

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        reply = await self._run("dead_letters", [queue, limit])
        letters = []
        for i in range(0, len(reply), 3):
            failed_ms, _, reason = _text(reply[i + 2]).partition(":")
            letters.append(
                DeadLetter(_text(reply[i]), queue, reply[i + 1], reason, int(failed_ms) / 1000)
            )
        return letters

    async def remove_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        if task_ids is None:
            return int(await self._run("remove_dead", [queue, "all"]))
        if not task_ids:
            return 0
        return int(await self._run("remove_dead", [queue, "some", *task_ids]))

    # -- administration --------------------------------------------------------------

    async def stats(self, queues: Sequence[str] | None = None) -> BrokerStats:
        found, live = await self._run("stats", list(queues or ()))
        result = []
        for name, per, scheduled, running, dead in found:
            ready = {int(per[i]): int(per[i + 1]) for i in range(0, len(per), 2)}
            result.append(QueueStats(_text(name), ready, int(scheduled), int(running), int(dead)))
        return BrokerStats(result, _worker_infos(live))

    async def purge(self, queue: str) -> int:
        return int(await self._run("purge", [queue]))

    async def promote_scheduled(self, queue: str | None = None) -> int:
        return int(await self._run("promote", [queue or ""]))

    async def heartbeat(self, worker: WorkerInfo, ttl: float) -> None:
        worker.last_seen = time.time()
        await self._run("heartbeat", [worker.id, json.dumps(worker.to_dict()), _ms(ttl)])

    async def remove_worker(self, worker_id: str) -> None:
        await self._run("heartbeat", [worker_id, "", ""])

    async def registered_workers(self) -> list[WorkerInfo]:
        """One script that reads the registry alone (the default would count every queue
        through ``stats``)."""
        live = await self._run("workers", [])
        return sorted(_worker_infos(live), key=lambda w: w.id)

    async def close(self) -> None:
        await self._clients.close()
