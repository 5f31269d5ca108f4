"""Redis clients, one per event loop, and the translation of redis-py errors.

Why per loop: an asyncio connection belongs to the loop that opened it, and one broker is
used from several loops in one process (the sync bridge thread, a worker, the user's own).
Why not a ``WeakKeyDictionary``: a client's connections and locks refer back to their loop,
so a weak key would never die; entries of closed loops are pruned explicitly instead.
Why the pid check: a forked child (gunicorn, multiprocessing) must not share its parent's
sockets, so it starts with no clients and opens its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import redis as sync_redis
import redis.connection as sync_connection
from redis import exceptions as rex
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff

if sys.version_info >= (3, 11):
    from asyncio import timeout as deadline
else:  # redis-py depends on async-timeout before 3.11.3
    from async_timeout import timeout as deadline  # type: ignore[import-not-found,no-redef,unused-ignore]

from fluxqueue.backends.redis.config import RedisConfig
from fluxqueue.errors import BrokerConnectionError, BrokerError

# What every connection sends as CLIENT SETINFO LIB-VER, given up front. Left to itself,
# redis-py 8 looks its own version up in the installed distributions' metadata on the
# first connection, which loads the email parser and leaves about 0.2 MB in every worker.
_LIB_INFO: dict[str, Any]
try:
    from redis.driver_info import DriverInfo
except ImportError:  # an older redis-py: its lib_version argument is not deprecated yet
    _LIB_INFO = {"lib_version": sync_redis.__version__}
else:
    _LIB_INFO = {"driver_info": DriverInfo(lib_version=sync_redis.__version__)}

__all__ = ["Clients", "Lane", "SyncClient", "translate_errors"]

log = logging.getLogger("fluxqueue.redis")

#: Connections per event loop unless the URL says ``max_connections``.
DEFAULT_MAX_CONNECTIONS = 100

# Failures that go away by themselves: the server is down, restarting, loading its data,
# failing over, or the cluster is resharding. The worker retries these with backoff.
_TRANSIENT: tuple[type[BaseException], ...] = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.BusyLoadingError,
    rex.ReadOnlyError,
    rex.MasterDownError,
    rex.TryAgainError,
    rex.ClusterDownError,
    rex.SlotNotCoveredError,
    rex.MaxConnectionsError,
    OSError,
    asyncio.TimeoutError,
)


class SyncClient:
    """The blocking client of one process, and the connections its fast path keeps.

    ``idle`` holds connections taken from the client's pool and put back after a complete
    request and reply: a stack that needs no lock (``list.append`` and ``list.pop`` are
    atomic), so a producer skips the pool's lock, pid check and readiness poll per call.
    Each thread still gets a connection of its own. A connection that failed is never put
    back (redis-py has closed it); the pool, which made them all, closes them all.
    """

    __slots__ = ("client", "idle", "pid")

    def __init__(self, client: sync_redis.Redis) -> None:
        self.client = client
        self.idle: list[sync_connection.AbstractConnection] = []
        self.pid = os.getpid()

    def checkout(self) -> sync_connection.AbstractConnection:
        try:
            return self.idle.pop()
        except IndexError:
            return self.client.connection_pool.get_connection()

    def checkin(self, connection: sync_connection.AbstractConnection) -> None:
        self.idle.append(connection)

    def discard(self, connection: Any) -> None:
        """Close a connection whose state is unknown and hand it back to its pool."""
        connection.disconnect()
        self.client.connection_pool.release(connection)


class Clients:
    """Hands out the client for the running event loop, creating it on first use."""

    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}
        self._pid = os.getpid()
        self._lanes: dict[tuple[asyncio.AbstractEventLoop, str], Lane] = {}
        self._sync: SyncClient | None = None

    def get_sync(self) -> sync_redis.Redis:
        """The blocking client of synchronous producers: one per process, thread-safe (its
        pool hands each thread its own connection); a forked child opens its own."""
        return self.sync().client

    def sync(self) -> SyncClient:
        """:meth:`get_sync` with the fast path's idle connections (see :class:`SyncClient`).

        After a fork the parent's connections are left alone, neither used nor closed: the
        sockets are shared with the parent, and closing them here would cut the parent off.
        """
        sync = self._sync
        if sync is None or sync.pid != os.getpid():
            with self._lock:
                sync = self._sync
                if sync is None or sync.pid != os.getpid():
                    sync = self._sync = SyncClient(self._new_sync())
        return sync

    def _new_sync(self) -> sync_redis.Redis:
        kwargs = {**_LIB_INFO, **self.config.client_kwargs}
        retry = sync_redis.retry.Retry(
            ExponentialBackoff(cap=0.2, base=0.02), 1, (rex.ConnectionError,)
        )
        max_connections = kwargs.pop("max_connections", None)
        cls: Any
        if kwargs.pop("ssl", False):
            cls = sync_connection.SSLConnection
        elif "unix_socket_path" in kwargs:
            kwargs["path"] = kwargs.pop("unix_socket_path")
            cls = sync_connection.UnixDomainSocketConnection
        else:
            cls = sync_connection.Connection
        pool = sync_redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
            connection_class=cls,
            max_connections=max_connections or DEFAULT_MAX_CONNECTIONS,
            timeout=kwargs.get("socket_timeout"),
            retry=retry,
            **kwargs,
        )
        return sync_redis.Redis(connection_pool=pool)

    def get(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._pid != os.getpid():
                self._clients, self._lanes, self._pid = {}, {}, os.getpid()
            client = self._clients.get(loop)
            if client is None:
                for old in [lp for lp in self._clients if lp.is_closed()]:
                    del self._clients[old]
                client = self._clients[loop] = self._new()
            return client

    def _new(self) -> Any:
        kwargs = {**_LIB_INFO, **self.config.client_kwargs}
        # One quick retry covers a pooled connection that died while idle (a restarted
        # server); anything longer is the worker's business, with its own backoff.
        retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), 1, (rex.ConnectionError,))
        if self.config.cluster:
            return RedisCluster(retry=retry, **kwargs)
        cls, kwargs = self._connection_class()
        max_connections = kwargs.pop("max_connections", None)
        # Blocking: with every connection busy, a call waits for one (up to the socket
        # timeout) instead of failing, as redis-py's default pool does past 100.
        pool = BlockingConnectionPool(
            connection_class=cls,
            max_connections=max_connections or DEFAULT_MAX_CONNECTIONS,
            timeout=kwargs.get("socket_timeout"),
            retry=retry,
            **kwargs,
        )
        return Redis(connection_pool=pool)

    def _connection_class(self) -> tuple[type[AbstractConnection], dict[str, Any]]:
        kwargs = {**_LIB_INFO, **self.config.client_kwargs}
        if kwargs.pop("ssl", False):
            return SSLConnection, kwargs
        if "unix_socket_path" in kwargs:
            kwargs["path"] = kwargs.pop("unix_socket_path")
            return UnixDomainSocketConnection, kwargs
        return Connection, kwargs

    def lane(self, name: str) -> Lane:
        """A connection of its own, for one hot path of the running loop (not on a cluster)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._pid != os.getpid():
                self._clients, self._lanes, self._pid = {}, {}, os.getpid()
            lane = self._lanes.get((loop, name))
            if lane is None:
                for old in [key for key in self._lanes if key[0].is_closed()]:
                    del self._lanes[old]
                cls, kwargs = self._connection_class()
                kwargs.pop("max_connections", None)
                # The lane times each exchange out itself (see Lane.call), and the worker
                # retries with its own backoff.
                timeout = kwargs.pop("socket_timeout", None) or 10.0
                connection = cls(retry=Retry(NoBackoff(), 0), **kwargs)
                lane = self._lanes[(loop, name)] = Lane(connection, timeout)
            return lane

    async def close(self) -> None:
        """Close every loop's client; later calls open new ones."""
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        with self._lock:
            clients, self._clients = self._clients, {}
            lanes, self._lanes = self._lanes, {}
            sync, self._sync = self._sync, None
            if sync is not None and sync.pid == os.getpid():
                with contextlib.suppress(Exception):
                    sync.client.close()
                    sync.client.connection_pool.disconnect()
            if self._pid != os.getpid():
                return  # the parent's clients: not ours to close
        for (loop, _), lane in lanes.items():
            if loop is current:
                await lane.close()
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(lane.close(), loop)
        for loop, client in clients.items():
            if loop is current:
                with contextlib.suppress(Exception):
                    await client.aclose()
            elif loop.is_running():
                # Closed on its own loop; a loop that is busy elsewhere is not waited for.
                asyncio.run_coroutine_threadsafe(_quiet_close(client), loop)


class Lane:
    """One connection that a hot path (the worker's fetches, its acks) has to itself.

    Why: a call through redis-py's client borrows a connection from the pool, starts a
    task to time the write out, records metrics and packs every argument generically; on
    the worker's hot paths that cost as much as the work. A lane sends commands packed by
    ``resp.pack`` on its own connection, and several at once when asked (``BLPOP`` and the
    fetch that follows it), under one deadline. Connecting, authentication, ``SELECT``,
    TLS and reply parsing stay redis-py's. Any failure or cancellation in the middle of
    an exchange closes the connection, so no stale reply is ever read; the next call
    reconnects.
    """

    def __init__(self, connection: AbstractConnection, timeout: float) -> None:
        self.connection = connection
        self.timeout = timeout
        self._lock = asyncio.Lock()

    async def call(self, commands: Sequence[bytes], wait: float = 0.0) -> list[Any]:
        """Send ``commands`` in one write and read one reply each. An error reply comes back
        as its exception object (the connection stays usable); ``wait`` is how long the
        server may block on them (``BLPOP``), on top of the socket timeout."""
        conn = self.connection
        async with self._lock:
            try:
                async with deadline(self.timeout + wait):
                    await conn.send_packed_command(b"".join(commands), check_health=False)
                    replies: list[Any] = []
                    for _ in commands:
                        try:
                            replies.append(await conn.read_response(timeout=math.inf))
                        except rex.ResponseError as exc:
                            replies.append(exc)
                    return replies
            except BaseException:
                await conn.disconnect(nowait=True)
                raise

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.disconnect()


async def _quiet_close(client: Any) -> None:
    with contextlib.suppress(Exception):
        await client.aclose()


@contextlib.contextmanager
def translate_errors(where: str, secret: str | None) -> Iterator[None]:
    """Turn redis-py and socket errors into fluxqueue's, naming the server, hiding secrets."""
    try:
        yield
    except (BrokerError, asyncio.CancelledError):
        raise
    except rex.AuthenticationError as exc:
        raise BrokerError(f"Redis at {where} refused the credentials: {_clean(exc, secret)}")
    except _TRANSIENT as exc:
        raise BrokerConnectionError(f"cannot reach Redis at {where}: {_clean(exc, secret)}")
    except rex.RedisClusterException as exc:
        # redis-py uses this one class both for "no node answers" and for misuse.
        if "cannot be connected" in str(exc):
            raise BrokerConnectionError(f"cannot reach Redis at {where}: {_clean(exc, secret)}")
        raise BrokerError(f"Redis Cluster at {where} failed: {_clean(exc, secret)}")
    except rex.RedisError as exc:
        raise BrokerError(f"Redis at {where} failed: {_clean(exc, secret)}")


def _clean(exc: BaseException, secret: str | None) -> str:
    text = str(exc) or type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return text
