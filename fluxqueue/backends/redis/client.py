"""redis-py clients, one set per event loop, and the translation of their errors.

fluxqueue speaks to Redis through redis-py and hiredis only: one client
library for a single server and for a cluster, with its TLS, authentication, health checks
and retries. docs/benchmarks.md ("Round 8: one Redis client") has the measurement that
retired fluxqueue's own protocol client in its favour.

Why per loop: an asyncio connection belongs to the loop that opened it, and one broker is
used from several loops in one process (the sync bridge thread, a worker, the user's own).
Why not a ``WeakKeyDictionary``: a connection's transport refers back to its loop, so a
weak key would never die; entries of closed loops are pruned explicitly instead.
Why the pid check: a forked child (gunicorn, multiprocessing) must not share its parent's
sockets, so it starts with no clients and opens its own. (redis-py's pools check the pid
too; this also keeps the child from closing clients that belong to its parent.)

Each loop gets a pooled client for ordinary calls and a connection of its own for each of
the worker's hot paths (its fetches with their blocking ``BLPOP``, its acks), so a waiting
fetch never holds a connection that others need. Synchronous producers share blocking
connections, one per thread in a call at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fluxqueue.backends.redis.config import RedisConfig
from fluxqueue.errors import BrokerConnectionError, BrokerError, ConfigurationError

__all__ = [
    "Clients",
    "Dedicated",
    "SyncConnections",
    "call",
    "call_sync",
    "translated",
]

log = logging.getLogger("fluxqueue.redis")

#: Connections per event loop unless the URL says ``max_connections``.
DEFAULT_MAX_CONNECTIONS = 100
T = TypeVar("T")
_Cache = dict[tuple[asyncio.AbstractEventLoop, str], Any]


class Clients:
    """Hands out the redis-py clients of the running event loop, made on first use."""

    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # per (event loop, role); cleared in place, never replaced (see _of_loop)
        self._clients: _Cache = {}
        self._sync: SyncConnections | None = None
        self._checked = False

    def _kwargs(self, for_asyncio: bool) -> dict[str, Any]:
        """redis-py's keyword arguments; TLS files are checked here, once, so that a
        wrong path is a configuration error rather than a connection that keeps failing."""
        kwargs = self.config.client_kwargs
        if kwargs.get("ssl") and not self._checked:
            _check_tls_files(kwargs)
            self._checked = True
        return {**_common_kwargs(for_asyncio), **kwargs}

    def pooled(self) -> Any:
        """The running loop's pooled client (``redis.asyncio.Redis``; ``RedisCluster``
        with ``cluster=1``)."""
        return self._of_loop("pooled", self._new_async)

    def dedicated(self, role: str) -> Dedicated:
        """The running loop's connection for the worker's hot path ``role`` (``fetch``,
        ``acks``; not on a cluster)."""
        return self._of_loop(role, lambda: Dedicated(self._kwargs(for_asyncio=True)))

    def sync(self) -> SyncConnections:
        """The blocking connections of synchronous producers in this process; a forked
        child gets its own and leaves its parent's alone (closing them would cut the
        parent off: the sockets are shared)."""
        sync = self._sync
        if sync is None or sync.pid != os.getpid():
            with self._lock:
                if self._sync is None or self._sync.pid != os.getpid():
                    self._sync = SyncConnections(self._kwargs(for_asyncio=False))
                sync = self._sync
        return sync

    def _new_async(self) -> Any:
        kwargs = self._kwargs(for_asyncio=True)
        if self.config.cluster:
            from redis.asyncio.cluster import RedisCluster

            return RedisCluster(**kwargs)
        from redis.asyncio import Redis

        return Redis(connection_pool=_pool(kwargs))

    def _of_loop(self, role: str, make: Callable[[], T]) -> T:
        """The running loop's ``role`` client, made on first use. A forked child first
        forgets its parent's clients (without closing them), and a new entry drops those
        of loops closed since."""
        with self._lock:
            if self._pid != os.getpid():
                self._clients.clear()
                self._pid = os.getpid()
            key = (asyncio.get_running_loop(), role)
            client = self._clients.get(key)
            if client is None:
                for old in [k for k in self._clients if k[0].is_closed()]:
                    del self._clients[old]
                client = self._clients[key] = make()
            return client

    async def close(self) -> None:
        """Close every loop's clients; later calls open new ones."""
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        with self._lock:
            clients = dict(self._clients)
            self._clients.clear()
            sync, self._sync = self._sync, None
            if sync is not None and sync.pid == os.getpid():
                sync.close()
            if self._pid != os.getpid():
                return  # the parent's connections: not ours to close
        for (loop, _), client in clients.items():
            closing = _quiet_close(client)
            if loop is current:
                await closing
            elif loop.is_running():
                # Closed on its own loop; a loop that is busy elsewhere is not waited for.
                asyncio.run_coroutine_threadsafe(closing, loop)
            else:
                closing.close()


def pack(commands: Sequence[Sequence[Any]]) -> bytes:
    """Commands (name first, then arguments: bytes, str, int or float) in the Redis
    protocol, packed by hiredis in C. redis-py would first run every argument through its
    Python encoder; on an enqueue of thousands of messages that is most of the client's
    time (docs/benchmarks.md, round 8)."""
    from hiredis import pack_command

    return b"".join([pack_command(tuple(command)) for command in commands])


@functools.cache
def _redis_errors() -> tuple[type[Exception], type[Exception]]:
    """redis-py's ``ConnectionError`` and ``ResponseError``, imported on first use (a
    worker on a cluster-free URL need not pay for them at start-up) and then kept."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError

    return RedisConnectionError, ResponseError


def call_sync(connections: SyncConnections, packed: Sequence[bytes]) -> list[Any]:
    """Send the commands in ``packed`` (one each, packed by ``hiredis.pack_command``) in
    one write on a blocking connection lent by ``connections`` and read one reply each;
    an error reply (``NOSCRIPT``, say) comes back as its redis-py exception, in its place,
    and the connection stays in step.

    A connection that turns out to be dead (a restarted server, a killed client) is
    replaced and the commands sent once more, as redis-py's own calls do (so a script
    may run twice: each is safe to repeat, at worst leasing a message again); a connection
    that cannot be opened is not retried, nor is a timeout. Any failure in the middle of
    an exchange closes the connection, so a stale reply is never read.
    """
    connection_error, response_error = _redis_errors()
    data = packed if len(packed) == 1 else [b"".join(packed)]  # redis-py writes each item
    connection = connections.checkout()

    def exchange() -> list[Any]:
        connection.send_packed_command(data)
        replies: list[Any] = []
        for _ in packed:
            try:
                replies.append(connection.read_response())
            except response_error as exc:
                replies.append(exc)
        return replies

    try:
        try:
            return exchange()
        except connection_error:
            connection.disconnect()  # dead while idle: once more, on a new connection
            return exchange()
    except BaseException:
        connection.disconnect()
        raise
    finally:
        connections.checkin(connection)


class Dedicated:
    """One redis-py asyncio connection of one event loop for one hot path of the worker
    (its fetches, whose ``BLPOP`` may block for seconds; its acks), lent to one caller at
    a time. Cheaper per call than a pool's checkout (a condition, a lock, a timer and
    metrics each time), and a blocking ``BLPOP`` never holds a connection others need."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        connection_class, settings = _connection_class(kwargs, for_asyncio=True)
        self.connection = connection_class(**settings)
        self.lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self.connection.disconnect()


async def call(client: Any, commands: Sequence[Sequence[Any]], wait: float = 0.0) -> list[Any]:
    """:func:`call_sync` on a ``redis.asyncio.Redis``'s pool or a :class:`Dedicated`
    connection; ``wait`` is how long the server may block on the commands (``BLPOP``), on
    top of the socket timeout. Cancelled in the middle of an exchange, the connection is
    closed: its late reply is never read."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError

    packed = [pack(commands)]
    if isinstance(client, Dedicated):
        await client.lock.acquire()
        connection = client.connection
    else:
        connection = await client.connection_pool.get_connection()
    timeout = (connection.socket_timeout or 0) + wait or None

    async def exchange() -> list[Any]:
        await connection.send_packed_command(packed)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await connection.read_response(timeout=timeout))
            except ResponseError as exc:
                replies.append(exc)
        return replies

    try:
        try:
            return await exchange()
        except RedisConnectionError:
            await connection.disconnect(nowait=True)  # dead while idle: once more
            return await exchange()
    except BaseException:
        await asyncio.shield(connection.disconnect(nowait=True))
        raise
    finally:
        if isinstance(client, Dedicated):
            client.lock.release()
        else:
            await asyncio.shield(client.connection_pool.release(connection))


def _common_kwargs(for_asyncio: bool) -> dict[str, Any]:
    """Settings every client shares.

    One quick retry covers a pooled connection that died while idle (a restarted server);
    anything longer is the worker's business, with its own backoff. redis-py's default
    would retry three times with up to 10 s between tries, and on timeouts too.
    ``driver_info`` gives redis-py's version for ``CLIENT SETINFO`` up front: left to
    itself, redis-py looks it up in the installed distributions' metadata on the first
    connection, which loads the email parser and leaves about 0.2 MB in the process.
    """
    from redis import __version__
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # redis-py before 7.1: its lib_version argument is not deprecated
        version_info: dict[str, Any] = {"lib_version": __version__}
    else:
        version_info = {"driver_info": DriverInfo(lib_version=__version__)}

    if for_asyncio:
        from redis.asyncio.retry import Retry as AsyncRetry

        retry: Any = AsyncRetry(ExponentialBackoff(cap=0.2, base=0.02), 1, (RedisConnectionError,))
    else:
        from redis.retry import Retry

        retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), 1, (RedisConnectionError,))
    return {"retry": retry, **version_info}


class SyncConnections:
    """redis-py connections for synchronous producers, lent to one calling thread at a
    time: one per thread that enqueues at once, kept for the next call.

    Not a redis-py pool: a pool's checkout locks, checks the process id, polls the socket
    for stray data and records metrics, which cost a single enqueue a fifth of its time
    (docs/benchmarks.md, round 8). ``list.pop`` and ``list.append`` are atomic, so threads
    need no lock here.
    """

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.pid = os.getpid()
        self._class, self._settings = _connection_class(kwargs, for_asyncio=False)
        self._idle: list[Any] = []
        self._all: list[Any] = []

    def checkout(self) -> Any:
        try:
            return self._idle.pop()
        except IndexError:
            connection = self._class(**self._settings)
            self._all.append(connection)
            return connection

    def checkin(self, connection: Any) -> None:
        self._idle.append(connection)

    def close(self) -> None:
        self._idle.clear()
        for connection in self._all:
            connection.disconnect()


def _connection_class(kwargs: dict[str, Any], for_asyncio: bool) -> tuple[Any, dict[str, Any]]:
    """redis-py's connection class for these client keyword arguments (TCP, unix socket
    or TLS) and the keyword arguments a connection of it takes."""
    settings = dict(kwargs)
    settings.pop("max_connections", None)
    if for_asyncio:
        from redis.asyncio import connection as module
    else:
        from redis import connection as module  # type: ignore[no-redef]
    path = settings.pop("unix_socket_path", None)
    if path is not None:
        settings["path"] = path
        settings.pop("socket_connect_timeout", None)  # a local socket connects at once
        return module.UnixDomainSocketConnection, settings
    if settings.pop("ssl", False):
        return module.SSLConnection, settings
    return module.Connection, settings


def _pool(kwargs: dict[str, Any]) -> Any:
    """An asyncio redis-py blocking pool (callers wait for a free connection, up to the
    socket timeout) built from client keyword arguments."""
    from redis.asyncio import BlockingConnectionPool

    connection_class, settings = _connection_class(kwargs, for_asyncio=True)
    return BlockingConnectionPool(
        connection_class=connection_class,
        max_connections=kwargs.get("max_connections", DEFAULT_MAX_CONNECTIONS),
        timeout=settings.get("socket_timeout"),
        **settings,
    )


def _check_tls_files(kwargs: dict[str, Any]) -> None:
    import ssl  # only for rediss:// URLs: a worker starts faster without it

    try:
        context = ssl.create_default_context(cafile=kwargs.get("ssl_ca_certs"))
        if kwargs.get("ssl_certfile"):
            context.load_cert_chain(kwargs["ssl_certfile"], kwargs.get("ssl_keyfile"))
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ConfigurationError(
            f"the broker URL's TLS files cannot be used (ssl_ca_certs, ssl_certfile, "
            f"ssl_keyfile): {exc}"
        ) from None


async def _quiet_close(client: Any) -> None:
    with contextlib.suppress(Exception):
        await client.aclose()


def translated(exc: Exception, where: str, secret: str | None, timeout: float) -> Exception:
    """fluxqueue's error for a redis-py or socket error ``exc``, naming the server, hiding
    secrets; ``exc`` itself when it is fluxqueue's already or not about Redis. Errors about
    the server's own condition (loading, failing over) and broken connections are
    ``BrokerConnectionError``: the worker retries those."""
    if isinstance(exc, BrokerError):
        return exc
    return _translate(exc, where, secret, timeout) or exc


def _translate(
    exc: Exception, where: str, secret: str | None, timeout: float
) -> BrokerError | None:
    from redis import exceptions as rex

    text = _clean(exc, secret)
    if isinstance(exc, rex.AuthenticationError) or _is_auth_reply(exc, rex):
        return BrokerError(f"Redis at {where} refused the credentials: {text}")
    if isinstance(exc, (rex.TimeoutError, asyncio.TimeoutError, TimeoutError)):
        return BrokerConnectionError(
            f"cannot reach Redis at {where}: no reply within {timeout:g} s ({text})"
        )
    if isinstance(exc, rex.InvalidResponse):
        return BrokerError(f"Redis at {where} sent a reply that is not RESP: {text}")
    if isinstance(exc, (rex.ConnectionError, rex.MaxConnectionsError)) and (
        "No connection available" in text
    ):
        return BrokerConnectionError(
            f"all connections to Redis at {where} stayed busy for {timeout:g} s "
            "(raise max_connections in the broker URL)"
        )
    if isinstance(exc, (*_transient(rex), OSError)):
        reason = _socket_reason(exc) or text
        return BrokerConnectionError(f"cannot reach Redis at {where}: {reason}")
    if isinstance(exc, rex.RedisClusterException):
        # redis-py uses this one class both for "no node answers" and for misuse.
        if "cannot be connected" in str(exc):
            return BrokerConnectionError(f"cannot reach Redis at {where}: {text}")
        return BrokerError(f"Redis Cluster at {where} failed: {text}")
    if isinstance(exc, rex.RedisError):
        return BrokerError(f"Redis at {where} failed: {text}")
    return None


def _transient(rex: Any) -> tuple[type[Exception], ...]:
    return (
        rex.ConnectionError,
        rex.BusyLoadingError,
        rex.ReadOnlyError,
        rex.MasterDownError,
        rex.TryAgainError,
        rex.ClusterDownError,
        rex.SlotNotCoveredError,
        rex.MaxConnectionsError,
    )


def _is_auth_reply(exc: Exception, rex: Any) -> bool:
    """An error reply about credentials (``WRONGPASS``, ``NOAUTH``, ``NOPERM``), which
    redis-py raises as a plain ``ResponseError`` in some places."""
    return isinstance(exc, rex.ResponseError) and str(exc).split(" ", 1)[0] in (
        "WRONGPASS",
        "NOAUTH",
        "NOPERM",
    )


def _socket_reason(exc: BaseException) -> str | None:
    """The operating system's words for a failed connection ("Connection refused",
    "Name or service not known"), without redis-py's "Error 111 connecting to ..."
    wrapping, which repeats the address and differs between its sync and async clients."""
    seen: BaseException | None = exc
    for _ in range(8):  # a chain of causes is short; the bound guards against a cycle
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError):
            return None  # its own text names the certificate problem
        if isinstance(seen, OSError) and seen.errno is not None:
            if isinstance(seen, socket.gaierror) or seen.errno <= 0:
                return str(seen.strerror) if seen.strerror else None
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return None


def _clean(exc: BaseException, secret: str | None) -> str:
    text = str(exc) or type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return text
