"""The Redis broker: the reference, production backend.

Every operation that changes more than one key is one Lua script (see ``scripts.py`` and
the ``*.lua`` files), so it is atomic on the server and costs one round trip. Time for
leases and delays is the Redis server's clock (``TIME`` inside scripts), so workers with
skewed clocks agree on when a lease expires. The key layout is in ``keys.py``.

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
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
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
from fluxqueue.backends.redis.config import RedisConfig, parse_url
from fluxqueue.backends.redis.connection import Clients, translate_errors
from fluxqueue.backends.redis.coordination import RedisCoordination
from fluxqueue.backends.redis.keys import Keys
from fluxqueue.backends.redis.resp import bulk, pack, raw
from fluxqueue.backends.redis.scripts import script
from fluxqueue.backends.redis.wire import BlockingConnection, ReplyError
from fluxqueue.errors import BrokerError, MessageError
from fluxqueue.message import Delivery, Message
from fluxqueue.state import State, initial_state

__all__ = ["RedisBroker"]

log = logging.getLogger("fluxqueue.redis")

#: Messages per script call in a bulk enqueue: large enough to amortise the round trip,
#: small enough that one call never blocks the server for long.
ENQUEUE_CHUNK = 2000
#: The first chunk of a blocking bulk enqueue (see ``_spans``).
FIRST_CHUNK = 250


#: How long after a fetch that emptied its queues the next one may skip asking first.
DRAINED_FRESH = 0.05


def _due(next_ms: int) -> float:
    """The fetch script's ``next_ms`` (-1: nothing due) as a ``time.monotonic()`` time."""
    return math.inf if next_ms < 0 else time.monotonic() + next_ms / 1000


def _ms(seconds: float | None) -> int:
    return 0 if not seconds else max(1, round(seconds * 1000))


def _message_args(message: Message, state: State) -> list[Any]:
    return [
        message.id,
        message.queue,
        message.priority,
        "" if message.eta is None else repr(message.eta * 1000),
        message.encode(),
        state.status,
        state.data,
        _ms(state.ttl),
    ]


def _fresh_flags(messages: Sequence[Message]) -> list[bool]:
    """Which messages the enqueue script may store without looking for an older one.

    A message is fresh when its id was minted for it (``Message.mark_minted``) and no
    earlier message of this batch carries the same id (the same object twice, or a copy).
    Spending the claim here means the same message enqueued again takes the general path.
    """
    if len(messages) == 1:
        return [messages[0].spend_minted()]
    seen: set[str] = set()
    flags = []
    for message in messages:
        fresh = message.spend_minted() and message.id not in seen
        seen.add(message.id)
        flags.append(fresh)
    return flags


def _eta_ms(eta: float | None) -> str:
    return "" if eta is None else repr(eta * 1000)


def _chunks(messages: Sequence[Message], ttl: float | None) -> list[list[Any]]:
    """The arguments of one enqueue script call per ENQUEUE_CHUNK messages (the asyncio
    and cluster path; see enqueue.lua for the layout)."""
    flags = _fresh_flags(messages)
    chunks: list[list[Any]] = []
    for start in range(0, len(messages), ENQUEUE_CHUNK):
        end = min(start + ENQUEUE_CHUNK, len(messages))
        args: list[Any] = [_ms(ttl), end - start]
        group: Any = None
        count_at = 0
        for i in range(start, end):
            message = messages[i]
            key = (message.queue, message.priority, _eta_ms(message.eta), "1" if flags[i] else "")
            if key != group:
                group, count_at = key, len(args) + 4
                args += [*key, 0]
            args[count_at] += 1
            args += [message.id, message.encode()]
        chunks.append(args)
    return chunks


_FRESH = b"$1\r\n1\r\n"
_NOT_FRESH = b"$0\r\n\r\n"
_ROW = b"$%d\r\n%b\r\n$%d\r\n%b\r\n"
_COUNTS = [bulk(n) for n in range(64)]


def _count(n: int) -> bytes:
    return _COUNTS[n] if n < 64 else bulk(n)


#: One group of an enqueue call: its routing arguments in RESP (queue, priority, eta_ms),
#: whether it is fresh, and each message's arguments (id, data).
_Group = tuple[bytes, bool, list[bytes]]


def _spans(total: int) -> Iterator[tuple[int, int]]:
    """Chunk bounds for a blocking enqueue: a short first chunk gets Redis working while
    the rest is encoded, then ENQUEUE_CHUNK messages per call."""
    start, size = 0, FIRST_CHUNK
    while start < total:
        end = min(start + size, total)
        yield start, end
        start, size = end, ENQUEUE_CHUNK


def _packed_chunks(
    messages: Sequence[Message],
    flags: list[bool],
    metas: dict[tuple[Any, ...], bytes],
) -> Iterator[list[_Group]]:
    """The enqueue calls' message arguments in RESP, ENQUEUE_CHUNK messages per call, made
    lazily so that the next chunk is encoded while Redis runs the previous one. ``metas``
    caches the groups' packed routing arguments from call to call."""
    if len(metas) > 256:  # delayed messages each have their own eta: keep the cache small
        metas.clear()
    for start, end in _spans(len(messages)):
        chunk: list[_Group] = []
        group: Any = None
        rows: list[bytes] = []
        for i in range(start, end):
            message = messages[i]
            fresh = flags[i]
            key = (message.queue, message.priority, message.eta, fresh)
            if key != group:
                meta = metas.get(key)
                if meta is None:
                    meta = metas[key] = bulk(key[0]) + bulk(key[1]) + bulk(_eta_ms(key[2]))
                group, rows = key, []
                chunk.append((meta, fresh, rows))
            mid = message.id
            bid = mid.encode() if type(mid) is str else raw(mid)
            data = message.encode()
            rows.append(_ROW % (len(bid), bid, len(data), data))
        yield chunk


def _one_chunk(message: Message, metas: dict[tuple[Any, ...], bytes]) -> list[_Group]:
    """``_packed_chunks`` for a single message: the one-at-a-time enqueue, without the
    generators and the batch's bookkeeping."""
    fresh = message.spend_minted()
    key = (message.queue, message.priority, message.eta, fresh)
    meta = metas.get(key)
    if meta is None:
        if len(metas) > 256:
            metas.clear()
        meta = metas[key] = bulk(key[0]) + bulk(key[1]) + bulk(_eta_ms(key[2]))
    mid = message.id
    bid = mid.encode() if type(mid) is str else raw(mid)
    data = message.encode()
    return [(meta, fresh, [_ROW % (len(bid), bid, len(data), data)])]


_MULTI = pack(("MULTI",))
_EXEC = pack(("EXEC",))


def _one_now(message: Message) -> bool:
    """Whether ``message`` may take ``_one_multi``: due now, and its id minted for it (so
    nothing can be stored under it yet). Spends the claim: a later enqueue of the same
    message takes the script."""
    return message.eta is None and type(message.priority) is int and message.spend_minted()


def _check_multi(replies: list[Any]) -> None:
    """Raise the first error among a ``MULTI``'s replies (``EXECABORT``, say, or an error
    inside ``EXEC``'s array)."""
    for reply in (*replies[:-1], *(replies[-1] if isinstance(replies[-1], list) else ())):
        if isinstance(reply, ReplyError):
            raise reply
    if replies[-1] is None:
        raise BrokerError("Redis did not run the enqueue's MULTI block (EXEC answered nil)")


def _cancel_swallowed() -> bool:
    """True when this task was cancelled but the Redis call returned anyway.

    On Python 3.11, ``asyncio.wait_for`` (which redis-py, used for a cluster, wraps around
    every send) returns the result instead of raising when the cancellation arrives just
    as the send is done, so ``task.cancel()`` would be lost and, say, a worker's shutdown
    would hang. The task
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
        self._heads: tuple[bytes, bytes] | None = None
        self._metas: dict[tuple[Any, ...], bytes] = {}
        self._ttls: dict[float | None, bytes] = {}
        self._multis: dict[tuple[str, int], tuple[bytes, bytes, bytes, list[bytes]]] = {}
        self._mprefix = self.keys.message("").encode()
        #: queues -> (when, next due): the last fetch from them came back short (see fetch)
        self._drained: dict[tuple[str, ...], tuple[float, float]] = {}

    # -- plumbing --------------------------------------------------------------------

    @contextmanager
    def _errors(self, in_loop: bool = True) -> Iterator[None]:
        try:
            with translate_errors(self.config.where, self._secret):
                yield
        except BrokerError as exc:
            if self._online:
                log.warning("Redis at %s is unreachable: %s", self.config.where, exc)
                self._online = False
            raise
        if not self._online:
            log.info("Redis at %s is reachable again", self.config.where)
            self._online = True
        if in_loop and _cancel_swallowed():
            raise asyncio.CancelledError()

    async def _run(self, name: str, args: list[Any]) -> Any:
        """Run script ``name`` on a pooled connection (on a cluster, redis-py's client)."""
        if self.config.cluster:
            with self._errors():
                client = self._clients.cluster()
                return await script(name).on_cluster(
                    client, [self.keys.route], [self.keys.base, *args]
                )
        return await self._eval(self._clients.call, name, args)

    async def _command(self, *args: Any) -> Any:
        """One plain command, on a pooled connection or the cluster."""
        with self._errors():
            if self.config.cluster:
                return await self._clients.cluster().execute_command(*args)
            (reply,) = await self._clients.call([pack(args)])
        if isinstance(reply, ReplyError):
            with self._errors():
                raise reply
        return reply

    # -- producing -------------------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message], ttl: float | None = None) -> None:
        if not messages:
            return
        if len(messages) == 1 and not self.config.cluster and _one_now(messages[0]):
            with self._errors():
                replies = await self._clients.call(self._one_multi(messages[0], self._ttl(ttl)))
                _check_multi(replies)
            return
        chunks = _chunks(messages, ttl)
        # The first call also loads the script if the server lacks it; the rest go in one
        # pipelined round trip.
        await self._run("enqueue", chunks[0])
        if len(chunks) > 1:
            await self._pipelined("enqueue", chunks[1:])

    def enqueue_sync(self, messages: Sequence[Message], ttl: float | None = None) -> None:
        """Enqueue on a blocking connection (``wire.BlockingConnection``), without the bridge
        thread's hop.

        The script call is packed here (see ``_packed_chunks``) and written to a connection
        this process's ``SyncConnections`` lends to the calling thread. A bulk
        enqueue overlaps the work: chunk N+1 is encoded while Redis runs chunk N, and each
        reply is read before the next chunk goes out, so chunks land in order and a
        ``NOSCRIPT`` is answered with ``EVAL`` of the same chunk. A connection that broke
        (a restarted server) is replaced once, and the chunk it carried is sent again
        along the general path (no fresh claims: the first copy may have been stored).
        """
        if self.config.cluster:  # the blocking cluster client is not set up: use the bridge
            super().enqueue_sync(messages, ttl)
            return
        if not messages:
            return
        try:
            self._enqueue_blocking(messages, self._ttl(ttl))
        except BaseException:
            with self._errors(in_loop=False):  # translates and logs the error
                raise
        if not self._online:
            with self._errors(in_loop=False):  # logs that Redis is reachable again
                pass

    def _ttl(self, ttl: float | None) -> bytes:
        """The state ttl in milliseconds, packed (a few distinct values: cached)."""
        packed = self._ttls.get(ttl)
        if packed is None:
            if len(self._ttls) > 16:
                self._ttls.clear()
            packed = self._ttls[ttl] = bulk(_ms(ttl))
        return packed

    def _one_multi(self, message: Message, ttl: bytes) -> list[bytes]:
        """A single message with a fresh id and no delay, stored by plain commands in one
        ``MULTI``/``EXEC`` instead of the enqueue script: its hash, its queue's name, a
        ``"<priority> <id>"`` entry on the queue's incoming list (which the scripts that
        read the ready set absorb first, see ``absorb`` in _lib.lua) and a wake-up token.
        Redis runs these about four times faster than the script, and far faster when
        it has been idle (the worker's latency). The parts that depend only on the queue
        and priority are packed once."""
        route = (message.queue, message.priority)
        parts = self._multis.get(route)
        if parts is None:
            if len(self._multis) > 256:
                self._multis.clear()
            queue, priority = route
            wake = self.keys.queue(queue, "wake")
            parts = self._multis[route] = (
                b"$1\r\nq\r\n%b$1\r\np\r\n%b$1\r\nt\r\n" % (bulk(queue), bulk(priority)),
                b"*3\r\n$5\r\nRPUSH\r\n" + bulk(self.keys.queue(queue, "incoming")),
                b"%d " % priority,
                [
                    pack(("SADD", self.keys.base + "queues", queue)),
                    pack(("LPUSH", wake, "1")),
                    pack(("LTRIM", wake, 0, 63)),
                    _EXEC,
                ],
            )
        fields, rpush, entry, tail = parts
        mid = message.id
        bid = mid.encode() if type(mid) is str else raw(mid)
        key = self._mprefix + bid
        data = message.encode()
        hset = b"*10\r\n$4\r\nHSET\r\n$%d\r\n%b\r\n$1\r\nd\r\n$%d\r\n%b\r\n%b%b" % (
            len(key),
            key,
            len(data),
            data,
            fields,
            ttl,
        )
        line = entry + bid
        return [_MULTI, hset, b"%b$%d\r\n%b\r\n" % (rpush, len(line), line), *tail]

    def _script_heads(self) -> tuple[bytes, bytes]:
        """The EVALSHA and EVAL commands' leading arguments, after the array header."""
        heads = self._heads
        if heads is None:
            code = script("enqueue")
            route, base = self.keys.route, self.keys.base
            sha = pack(["EVALSHA", code.sha, 1, route, base])
            full = pack(["EVAL", code.source, 1, route, base])
            heads = self._heads = (sha[sha.index(b"\r\n") + 2 :], full[full.index(b"\r\n") + 2 :])
        return heads

    def _enqueue_blocking(self, messages: Sequence[Message], ttl: bytes) -> None:
        """``ttl``: the state ttl, packed (``_ttl``)."""
        sync = self._clients.sync()
        connection = sync.checkout()
        try:
            if len(messages) == 1 and _one_now(messages[0]):
                self._enqueue_one(connection, messages[0], ttl)
            else:
                self._enqueue_scripted(connection, messages, ttl)
        except BaseException as exc:
            if not isinstance(exc, ReplyError):  # a reply may still be on its way
                connection.close()
            raise
        finally:
            sync.checkin(connection)

    def _enqueue_one(self, connection: BlockingConnection, message: Message, ttl: bytes) -> None:
        """``_one_multi`` on a blocking connection. If the connection breaks, the message
        may have been stored: it is sent once more by the script's general path, which
        replaces whatever is stored under its id."""
        commands = self._one_multi(message, ttl)
        try:
            connection.send(b"".join(commands))
            replies = [connection.read() for _ in commands]
        except ConnectionError:
            self._enqueue_scripted(connection, [message], ttl, retried=True)
            return
        _check_multi(replies)

    def _enqueue_scripted(
        self,
        connection: BlockingConnection,
        messages: Sequence[Message],
        ttl: bytes,
        retried: bool = False,
    ) -> None:
        """The enqueue script on a blocking connection (see ``enqueue_sync``); ``retried``:
        the one resend after a broken connection is spent already."""
        sha, full = self._script_heads()
        heads = (sha + ttl, full + ttl)
        chunks: Iterable[list[_Group]]
        if len(messages) == 1:
            chunks = (_one_chunk(messages[0], self._metas),)
        else:
            chunks = _packed_chunks(messages, _fresh_flags(messages), self._metas)
        sent: list[_Group] | None = None
        for chunk in chunks:
            if sent is not None:
                retried = self._reply(connection, heads, sent, retried)
            retried = self._send(connection, heads[0], chunk, retried)
            sent = chunk
        assert sent is not None
        self._reply(connection, heads, sent, retried)

    @staticmethod
    def _request(head: bytes, chunk: list[_Group], fresh: bool) -> bytes:
        """One enqueue call: ``head`` (EVALSHA or EVAL and the arguments up to the state
        ttl, see ``_enqueue_blocking``) and ``chunk``; with ``fresh`` false every message takes the
        script's general path."""
        total = sum(len(rows) for _, _, rows in chunk)
        argc = 5 + 2 + 5 * len(chunk) + 2 * total
        parts = [b"*%d\r\n" % argc, head, _count(total)]
        for meta, group_fresh, rows in chunk:
            parts.append(meta)
            parts.append(_FRESH if fresh and group_fresh else _NOT_FRESH)
            parts.append(_count(len(rows)))
            parts += rows
        return b"".join(parts)

    def _send(
        self,
        connection: BlockingConnection,
        head: bytes,
        chunk: list[_Group],
        retried: bool,
    ) -> bool:
        try:
            connection.send(self._request(head, chunk, not retried))
        except ConnectionError:
            if retried:
                raise
            connection.send(self._request(head, chunk, False))  # reconnects
            return True
        return retried

    def _reply(
        self,
        connection: BlockingConnection,
        heads: tuple[bytes, bytes],
        chunk: list[_Group],
        retried: bool,
    ) -> bool:
        """Read the reply to ``chunk``; answer NOSCRIPT with EVAL, a broken connection
        (once per call) with the chunk sent again. Returns whether the retry is spent."""
        try:
            reply = connection.read()
        except ConnectionError:
            if retried:
                raise
            connection.send(self._request(heads[0], chunk, False))
            self._reply(connection, heads, chunk, True)
            return True
        if isinstance(reply, ReplyError):
            if not reply.noscript:
                raise reply
            # nothing ran: the fresh claims still hold
            connection.send(self._request(heads[1], chunk, not retried))
            reply = connection.read()
            if isinstance(reply, ReplyError):
                raise reply
        return retried

    async def _pipelined(self, name: str, calls: list[list[Any]]) -> None:
        if self.config.cluster:
            # redis-py refuses scripts in cluster pipelines; concurrent calls overlap instead.
            await asyncio.gather(*(self._run(name, args) for args in calls))
            return
        code = script(name)
        head = [self.keys.route]
        with self._errors():
            results = await self._clients.call(
                [code.evalsha(head, [self.keys.base, *args]) for args in calls]
            )
        for args, result in zip(calls, results, strict=True):
            if isinstance(result, ReplyError):
                if not result.noscript:
                    with self._errors():
                        raise result
                await self._run(name, args)  # after a restart or failover: once more

    # -- consuming -------------------------------------------------------------------

    async def fetch(self, queues: Sequence[str], count: int, timeout: float) -> list[Delivery]:
        if count <= 0 or not queues:
            return []
        now = time.monotonic()
        deadline = now + timeout
        args = [count, self._vt_ms, *queues]
        wake = self.keys.wake(queues)
        if self.config.cluster:
            lease = self._lease_on_cluster
            # BLPOP must come back before the socket timeout fires, or redis-py gives up.
            longest = min(self.config.block_timeout, self._socket_timeout() * 0.8)
        else:
            lease, longest = self._lease_on_lane, self.config.block_timeout
        key = tuple(queues)
        drained = self._drained.pop(key, None)
        if drained is not None and timeout > 0 and now - drained[0] < DRAINED_FRESH:
            # The fetch just before emptied these queues, and whatever was enqueued since
            # left a wake token: go straight to BLPOP (the fetch follows it in the same
            # write) instead of asking first. An idle worker that just got one message
            # thus makes one round trip per message, not two.
            reply, due = [], drained[1]
        else:
            reply = await lease(args, None, 0.0)
            due = _due(reply[0])
        while len(reply) <= 1:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                return []
            wait = min(left, longest, max(due - now, 0.0))
            # BLPOP 0 would block forever; Redis counts timeouts in milliseconds.
            reply = await lease(args, wake, max(wait, 0.005))
            due = _due(reply[0])
        if len(reply) // 4 < count:  # fewer than asked: the queues are empty now
            self._drained[key] = (time.monotonic(), due)
        return [
            Delivery(_text(reply[i]), _text(reply[i + 1]), reply[i + 2], _text(reply[i + 3]))
            for i in range(1, len(reply), 4)
        ]

    async def _lease_on_lane(self, args: list[Any], wake: list[str] | None, wait: float) -> Any:
        """The fetch script; with ``wake``, behind a ``BLPOP`` on the wake-up lists, in the
        same write: Redis runs the script the moment BLPOP returns (a token, or its timeout),
        so a woken worker leases without another round trip."""
        if wake is None:
            return await self._on_lane("fetch", "fetch", args)
        blpop = pack(("BLPOP", *wake, f"{wait:.3f}"))
        return await self._on_lane("fetch", "fetch", args, first=blpop, wait=wait)

    async def _lease_on_cluster(self, args: list[Any], wake: list[str] | None, wait: float) -> Any:
        if wake is not None:
            await self._command("BLPOP", *wake, round(wait, 3))
        return await self._run("fetch", args)

    async def _on_lane(
        self, lane: str, name: str, args: list[Any], first: bytes | None = None, wait: float = 0.0
    ) -> Any:
        """Run script ``name`` on the lane ``lane`` (see ``Lane``), after ``first`` if given."""
        return await self._eval(self._clients.lane(lane).call, name, args, first, wait)

    async def _eval(
        self,
        call: Callable[[Sequence[bytes], float], Awaitable[list[Any]]],
        name: str,
        args: list[Any],
        first: bytes | None = None,
        wait: float = 0.0,
    ) -> Any:
        """Run script ``name`` through ``call`` (a lane's or the pool's), after ``first``
        if given; ``NOSCRIPT`` (a restarted or flushed server) is answered with ``EVAL``."""
        code = script(name)
        keys, full = [self.keys.route], [self.keys.base, *args]
        commands = [code.evalsha(keys, full)]
        if first is not None:
            commands.insert(0, first)
        with self._errors(in_loop=False):  # no asyncio.wait_for here to lose a cancel
            replies = await call(commands, wait)
            last = replies[-1]
            if isinstance(last, ReplyError) and last.noscript:
                replies[-1:] = await call([code.eval(keys, full)], 0.0)
            for reply in replies:
                if isinstance(reply, ReplyError):
                    raise reply
        return replies[-1]

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
        if self.config.cluster:
            await self._run("ack_many", args)
        else:
            await self._on_lane("acks", "ack_many", args)

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
        workers = [WorkerInfo.from_dict(json.loads(info)) for info in live]
        return BrokerStats(result, workers)

    async def purge(self, queue: str) -> int:
        return int(await self._run("purge", [queue]))

    async def promote_scheduled(self, queue: str | None = None) -> int:
        return int(await self._run("promote", [queue or ""]))

    async def heartbeat(self, worker: WorkerInfo, ttl: float) -> None:
        worker.last_seen = time.time()
        await self._run("heartbeat", [worker.id, json.dumps(worker.to_dict()), _ms(ttl)])

    async def remove_worker(self, worker_id: str) -> None:
        await self._run("heartbeat", [worker_id, "", ""])

    async def close(self) -> None:
        await self._clients.close()
