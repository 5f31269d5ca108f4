"""Connections to Redis, one set per event loop, and the translation of their errors.

Why per loop: an asyncio connection belongs to the loop that opened it, and one broker is
used from several loops in one process (the sync bridge thread, a worker, the user's own).
Why not a ``WeakKeyDictionary``: a connection's transport refers back to its loop, so a
weak key would never die; entries of closed loops are pruned explicitly instead.
Why the pid check: a forked child (gunicorn, multiprocessing) must not share its parent's
sockets, so it starts with no connections and opens its own.

A single server is spoken to on fluxqueue's own connections (``wire.py``): a :class:`Lane`
is one asyncio connection, a :class:`Pool` hands lanes to concurrent callers, and
``wire.SyncConnections`` serves blocking producers. redis-py, imported only then, serves a
Redis Cluster.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    from asyncio import timeout as deadline
else:  # redis-py depends on async-timeout before 3.11.3
    from async_timeout import timeout as deadline  # type: ignore[import-not-found,no-redef,unused-ignore]

from fluxqueue.backends.redis.config import RedisConfig
from fluxqueue.backends.redis.wire import (
    AUTH_CODES,
    TRANSIENT_CODES,
    AuthError,
    Endpoint,
    ProtocolError,
    ReplyError,
    SyncConnections,
    new_reader,
)
from fluxqueue.errors import BrokerConnectionError, BrokerError

__all__ = ["Clients", "Lane", "Pool", "translate_errors"]

log = logging.getLogger("fluxqueue.redis")

#: Connections per event loop unless the URL says ``max_connections``.
DEFAULT_MAX_CONNECTIONS = 100
T = TypeVar("T")


class _Protocol(asyncio.Protocol):
    """Collects the replies of one connection as they arrive."""

    def __init__(self) -> None:
        self.reader = new_reader()
        self.replies: collections.deque[Any] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self.want = 0
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        try:
            reply = reader.gets()
            while reply is not False:
                self.replies.append(reply)
                reply = reader.gets()
        except ProtocolError as exc:
            self.lost = exc
            assert self.transport is not None
            self.transport.abort()
        if len(self.replies) >= self.want or self.lost is not None:
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self.lost = exc or ConnectionError("the server closed the connection")
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self, count: int) -> list[Any]:
        """The next ``count`` replies."""
        replies = self.replies
        while len(replies) < count:
            if self.lost is not None:
                raise self.lost
            self.want = count
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return [replies.popleft() for _ in range(count)]


class Lane:
    """One connection of the running loop, for one caller at a time.

    The worker's hot paths (its fetches, its acks) each have one to themselves, and a
    :class:`Pool` lends them to other callers. Commands arrive packed (``resp.pack``) and
    go out in one write; ``BLPOP`` and the fetch behind it, say. Any failure or
    cancellation in the middle of an exchange closes the connection, so a stale reply is
    never read; the next call reconnects.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._protocol: _Protocol | None = None
        self._lock = asyncio.Lock()
        self._used = 0.0

    @property
    def connected(self) -> bool:
        protocol = self._protocol
        return protocol is not None and protocol.lost is None

    async def call(self, commands: Sequence[bytes], wait: float = 0.0) -> list[Any]:
        """Send ``commands`` in one write and read one reply each. An error reply comes back
        as a ``ReplyError`` (the connection stays usable); ``wait`` is how long the server
        may block on them (``BLPOP``), on top of the socket timeout."""
        endpoint = self.endpoint
        async with self._lock:
            try:
                async with deadline(endpoint.timeout + wait):
                    protocol = self._protocol
                    if protocol is None or protocol.lost is not None or self._stale():
                        protocol = await self._connect()
                    assert protocol.transport is not None
                    protocol.transport.write(b"".join(commands))
                    replies = await protocol.read(len(commands))
            except BaseException as exc:
                self._drop()
                if isinstance(exc, asyncio.TimeoutError):
                    raise TimeoutError(f"no reply within {endpoint.timeout + wait:g} s") from None
                raise
            self._used = time.monotonic()
            return replies

    def _stale(self) -> bool:
        check = self.endpoint.health_check
        return bool(check) and time.monotonic() - self._used > check

    async def _connect(self) -> _Protocol:
        self._drop()
        endpoint = self.endpoint
        loop = asyncio.get_running_loop()
        async with deadline(endpoint.connect_timeout):
            if endpoint.path is not None:
                _, protocol = await loop.create_unix_connection(_Protocol, endpoint.path)
            else:
                _, protocol = await loop.create_connection(
                    _Protocol,
                    endpoint.host,
                    endpoint.port,
                    ssl=endpoint.ssl,
                    server_hostname=endpoint.server_hostname(),
                )
        self._protocol = protocol
        if endpoint.greeting:
            assert protocol.transport is not None
            protocol.transport.write(endpoint.greeting)
            endpoint.check_greeting(await protocol.read(endpoint.greeting_replies))
        return protocol

    def _drop(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abort()

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()


class Pool:
    """Lanes for the running loop's concurrent callers, at most ``size`` of them; with all
    busy, a caller waits (up to the socket timeout) instead of failing."""

    def __init__(self, endpoint: Endpoint, size: int) -> None:
        self.endpoint = endpoint
        self.size = size
        self._idle: list[Lane] = []
        self._count = 0
        self._waiting: collections.deque[asyncio.Future[Lane]] = collections.deque()

    async def call(self, commands: Sequence[bytes], wait: float = 0.0) -> list[Any]:
        """:meth:`Lane.call` on a free lane. A lane that had been idle and turns out to be
        dead (a restarted server) is retried once on a new connection, as redis-py's
        clients do; a connection that cannot be opened is not."""
        lane = await self._take()
        try:
            reused = lane.connected
            try:
                return await lane.call(commands, wait)
            except ConnectionError:
                if not reused:
                    raise
                return await lane.call(commands, wait)
        finally:
            self._give(lane)

    async def _take(self) -> Lane:
        if self._idle:
            return self._idle.pop()
        if self._count < self.size:
            self._count += 1
            return Lane(self.endpoint)
        waiter: asyncio.Future[Lane] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            async with deadline(self.endpoint.timeout):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._give(waiter.result())  # handed over just too late: pass it on
            else:
                waiter.cancel()
            if isinstance(exc, asyncio.TimeoutError):
                raise BrokerConnectionError(
                    f"all {self.size} connections stayed busy for {self.endpoint.timeout:g} s "
                    "(raise max_connections in the broker URL)"
                ) from None
            raise

    def _give(self, lane: Lane) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(lane)
                return
        self._idle.append(lane)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for lane in idle:
            await lane.close()


class Clients:
    """Hands out the connections of the running event loop, creating them on first use."""

    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._endpoint: Endpoint | None = None
        # per (event loop, name); cleared in place, never replaced (see _of_loop)
        self._pools: dict[tuple[asyncio.AbstractEventLoop, str], Pool] = {}
        self._lanes: dict[tuple[asyncio.AbstractEventLoop, str], Lane] = {}
        self._clusters: dict[tuple[asyncio.AbstractEventLoop, str], Any] = {}
        self._sync: SyncConnections | None = None

    @property
    def endpoint(self) -> Endpoint:
        """Built on first use: a TLS context reads its certificate files then."""
        endpoint = self._endpoint
        if endpoint is None:
            endpoint = self._endpoint = Endpoint(self.config.client_kwargs, self.config.busy_poll)
        return endpoint

    def sync(self) -> SyncConnections:
        """The blocking connections of synchronous producers in this process; a forked child
        gets its own. The parent's are left alone, neither used nor closed: the sockets are
        shared with the parent, and closing them here would cut the parent off."""
        sync = self._sync
        if sync is None or sync.pid != os.getpid():
            with self._lock:
                sync = self._sync
                if sync is None or sync.pid != os.getpid():
                    sync = self._sync = SyncConnections(self.endpoint)
        return sync

    def _of_loop(
        self,
        cache: dict[tuple[asyncio.AbstractEventLoop, str], T],
        name: str,
        make: Callable[[], T],
    ) -> T:
        """The running loop's ``name`` in ``cache``, made on first use. A forked child first
        forgets its parent's connections (without closing them), and a new entry drops those
        of loops closed since."""
        with self._lock:
            if self._pid != os.getpid():
                for each in (self._pools, self._lanes, self._clusters):
                    each.clear()
                self._pid = os.getpid()
            key = (asyncio.get_running_loop(), name)
            item = cache.get(key)
            if item is None:
                for old in [k for k in cache if k[0].is_closed()]:
                    del cache[old]
                item = cache[key] = make()
            return item

    async def call(self, commands: Sequence[bytes], wait: float = 0.0) -> list[Any]:
        """Send ``commands`` on a pooled lane of the running loop; one reply each."""
        size = self.config.client_kwargs.get("max_connections") or DEFAULT_MAX_CONNECTIONS
        pool = self._of_loop(self._pools, "", lambda: Pool(self.endpoint, size))
        return await pool.call(commands, wait)

    def lane(self, name: str) -> Lane:
        """A connection of its own, for one hot path of the running loop (not on a cluster)."""
        return self._of_loop(self._lanes, name, lambda: Lane(self.endpoint))

    def cluster(self) -> Any:
        """The running loop's redis-py ``RedisCluster`` client (``cluster=1``)."""
        return self._of_loop(self._clusters, "", lambda: _new_cluster(self.config))

    async def close(self) -> None:
        """Close every loop's connections; later calls open new ones."""
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        with self._lock:
            pools, lanes, clusters = dict(self._pools), dict(self._lanes), dict(self._clusters)
            for each in (self._pools, self._lanes, self._clusters):
                each.clear()
            sync, self._sync = self._sync, None
            if sync is not None and sync.pid == os.getpid():
                sync.close()
            if self._pid != os.getpid():
                return  # the parent's connections: not ours to close
        closing: list[tuple[asyncio.AbstractEventLoop, Any]] = [
            *((loop, lane.close()) for (loop, _), lane in lanes.items()),
            *((loop, pool.close()) for (loop, _), pool in pools.items()),
            *((loop, _quiet_close(client)) for (loop, _), client in clusters.items()),
        ]
        for loop, coroutine in closing:
            if loop is current:
                await coroutine
            elif loop.is_running():
                # Closed on its own loop; a loop that is busy elsewhere is not waited for.
                asyncio.run_coroutine_threadsafe(coroutine, loop)
            else:
                coroutine.close()


def _new_cluster(config: RedisConfig) -> Any:
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    # One quick retry covers a pooled connection that died while idle (a restarted
    # server); anything longer is the worker's business, with its own backoff.
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), 1, (RedisConnectionError,))
    return RedisCluster(retry=retry, **redis_py_info(), **config.client_kwargs)


def redis_py_info() -> dict[str, Any]:
    """redis-py's own version for ``CLIENT SETINFO LIB-VER``, given up front: left to
    itself, redis-py 8 looks it up in the installed distributions' metadata on the first
    connection, which loads the email parser and leaves about 0.2 MB in the process."""
    from redis import __version__

    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # an older redis-py: its lib_version argument is not deprecated yet
        return {"lib_version": __version__}
    return {"driver_info": DriverInfo(lib_version=__version__)}


async def _quiet_close(client: Any) -> None:
    with contextlib.suppress(Exception):
        await client.aclose()


@contextlib.contextmanager
def translate_errors(where: str, secret: str | None) -> Iterator[None]:
    """Turn Redis, socket and redis-py errors into fluxqueue's, naming the server, hiding
    secrets. Error replies about the server's own condition (loading, failing over) and
    broken connections are ``BrokerConnectionError``: the worker retries those."""
    try:
        yield
    except (BrokerError, asyncio.CancelledError):
        raise
    except ReplyError as exc:
        if isinstance(exc, AuthError) or exc.code in AUTH_CODES:
            raise BrokerError(f"Redis at {where} refused the credentials: {_clean(exc, secret)}")
        if exc.code in TRANSIENT_CODES:
            raise BrokerConnectionError(f"cannot reach Redis at {where}: {_clean(exc, secret)}")
        raise BrokerError(f"Redis at {where} failed: {_clean(exc, secret)}")
    except ProtocolError as exc:
        raise BrokerError(f"Redis at {where} sent a reply that is not RESP: {exc}")
    except (OSError, asyncio.TimeoutError) as exc:  # refused, reset, timed out, TLS, DNS
        raise BrokerConnectionError(f"cannot reach Redis at {where}: {_clean(exc, secret)}")
    except Exception as exc:
        if type(exc).__module__.startswith("redis."):
            raise _from_redis_py(exc, where, secret) from exc
        raise


def _from_redis_py(exc: Exception, where: str, secret: str | None) -> BrokerError:
    """A redis-py error (Redis Cluster) as fluxqueue's."""
    from redis import exceptions as rex

    transient = (
        rex.ConnectionError,
        rex.TimeoutError,
        rex.BusyLoadingError,
        rex.ReadOnlyError,
        rex.MasterDownError,
        rex.TryAgainError,
        rex.ClusterDownError,
        rex.SlotNotCoveredError,
        rex.MaxConnectionsError,
    )
    text = _clean(exc, secret)
    if isinstance(exc, rex.AuthenticationError):
        return BrokerError(f"Redis at {where} refused the credentials: {text}")
    if isinstance(exc, transient):
        return BrokerConnectionError(f"cannot reach Redis at {where}: {text}")
    if isinstance(exc, rex.RedisClusterException):
        # redis-py uses this one class both for "no node answers" and for misuse.
        if "cannot be connected" in str(exc):
            return BrokerConnectionError(f"cannot reach Redis at {where}: {text}")
        return BrokerError(f"Redis Cluster at {where} failed: {text}")
    return BrokerError(f"Redis at {where} failed: {text}")


def _clean(exc: BaseException, secret: str | None) -> str:
    text = str(exc) or type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return text
