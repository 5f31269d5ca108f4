"""The Redis protocol on fluxqueue's own connections: where to connect, how to greet the
server, how to read its replies, and the blocking connection of synchronous producers.

Why not redis-py here: importing it costs a worker about 7 MB of memory (``redis/__init__``
loads every client, the cluster and its command tables), and fluxqueue sends a handful of
commands, packed by ``resp.pack``, on paths where redis-py's generic per-command machinery
costs as much as the work. redis-py still serves Redis Cluster (``cluster=1``), whose
routing and redirections are not worth redoing. Replies are parsed by hiredis when it is
installed (the ``hiredis`` extra) and by :class:`PyReader` otherwise; both give the same
values: ``bytes``, ``int``, ``None``, lists, and :class:`ReplyError` for error replies,
which are returned in place, never raised, so that one bad reply in a batch does not hide
the others.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from fluxqueue.backends.redis.resp import pack
from fluxqueue.errors import ConfigurationError

__all__ = [
    "BlockingConnection",
    "Endpoint",
    "ProtocolError",
    "PyReader",
    "Reader",
    "ReplyError",
    "new_reader",
]

#: Error replies that go away by themselves: the server is loading its data, is a replica
#: now, lost its master, or a cluster is resharding or down.
TRANSIENT_CODES = frozenset({"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"})
#: Error replies that mean the credentials were refused or are missing.
AUTH_CODES = frozenset({"NOAUTH", "WRONGPASS"})


class ReplyError(Exception):
    """An error reply from the server (``-ERR ...``); ``code`` is its first word."""

    @property
    def code(self) -> str:
        return str(self).split(" ", 1)[0]

    @property
    def noscript(self) -> bool:
        return str(self).startswith("NOSCRIPT")


class AuthError(ReplyError):
    """The server refused the greeting's ``AUTH``."""


class ProtocolError(Exception):
    """The server sent something that is not the Redis protocol."""


class Reader(Protocol):
    def feed(self, data: bytes, /) -> None: ...

    def gets(self) -> Any: ...


class _Incomplete(Exception):
    pass


class PyReader:
    """RESP2 replies from a byte stream, in Python: hiredis's ``Reader`` interface (``feed``
    the bytes received, ``gets`` a complete reply or ``False``)."""

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def gets(self) -> Any:
        try:
            reply, pos = self._parse(self._pos)
        except _Incomplete:
            return False
        if pos == len(self._buf):
            self._buf.clear()
            pos = 0
        elif pos > 65536:
            del self._buf[:pos]
            pos = 0
        self._pos = pos
        return reply

    def _parse(self, pos: int) -> tuple[Any, int]:
        buf = self._buf
        end = buf.find(b"\r\n", pos)
        if end < 0:
            raise _Incomplete
        kind = buf[pos]
        line = bytes(buf[pos + 1 : end])
        pos = end + 2
        try:
            if kind == 36:  # $ bulk string
                size = int(line)
                if size < 0:
                    return None, pos
                if len(buf) < pos + size + 2:
                    raise _Incomplete
                return bytes(buf[pos : pos + size]), pos + size + 2
            if kind == 42:  # * array
                count = int(line)
                if count < 0:
                    return None, pos
                items = []
                for _ in range(count):
                    item, pos = self._parse(pos)
                    items.append(item)
                return items, pos
            if kind == 58:  # : integer
                return int(line), pos
        except ValueError:
            raise ProtocolError(f"not a number in a reply: {line[:40]!r}") from None
        if kind == 43:  # + simple string
            return line, pos
        if kind == 45:  # - error
            return ReplyError(line.decode("utf-8", "replace")), pos
        raise ProtocolError(f"not the Redis protocol: {bytes(buf[pos - len(line) - 3 :][:40])!r}")


def new_reader() -> Reader:
    """A reply reader: hiredis's when it is installed, :class:`PyReader` otherwise."""
    try:
        import hiredis
    except ImportError:
        return PyReader()
    reader: Reader = hiredis.Reader(protocolError=ProtocolError, replyError=ReplyError)
    return reader


class Endpoint:
    """Where and how to connect, from a :class:`RedisConfig`'s ``client_kwargs``."""

    __slots__ = (
        "_names",
        "busy_poll",
        "connect_timeout",
        "greeting",
        "health_check",
        "host",
        "path",
        "port",
        "ssl",
        "timeout",
    )

    def __init__(self, kwargs: dict[str, Any], busy_poll: float = 0.0) -> None:
        self.host: str = kwargs.get("host", "127.0.0.1")
        self.port: int = kwargs.get("port", 6379)
        self.path: str | None = kwargs.get("unix_socket_path")
        self.timeout: float = kwargs.get("socket_timeout") or 10.0
        self.connect_timeout: float = kwargs.get("socket_connect_timeout") or 5.0
        #: Seconds after which an idle connection is reopened before use (0: never).
        self.health_check: float = kwargs.get("health_check_interval") or 0.0
        self.ssl = _ssl_context(kwargs) if kwargs.get("ssl") else None
        #: Seconds a blocking connection polls for a reply before it sleeps (0: never; never
        #: over TLS, whose sockets take no receive flags). See ``BlockingConnection.receive``.
        self.busy_poll: float = 0.0 if self.ssl is not None else busy_poll
        commands: list[list[Any]] = []
        if kwargs.get("password"):
            user = [kwargs["username"]] if kwargs.get("username") else []
            commands.append(["AUTH", *user, kwargs["password"]])
        if kwargs.get("db"):
            commands.append(["SELECT", kwargs["db"]])
        if kwargs.get("client_name"):
            commands.append(["CLIENT", "SETNAME", kwargs["client_name"]])
        self._names = [command[0] for command in commands]
        #: What a new connection sends first, in one write.
        self.greeting = b"".join(pack(command) for command in commands)

    def check_greeting(self, replies: Sequence[Any]) -> None:
        """Raise the first error among the greeting's replies (``AuthError`` for AUTH's)."""
        for name, reply in zip(self._names, replies, strict=True):
            if isinstance(reply, ReplyError):
                raise AuthError(str(reply)) if name == "AUTH" else reply

    @property
    def greeting_replies(self) -> int:
        return len(self._names)

    def server_hostname(self) -> str | None:
        return self.host if self.ssl is not None and self.ssl.check_hostname else None


def _ssl_context(kwargs: dict[str, Any]) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=kwargs.get("ssl_ca_certs"))
        if kwargs.get("ssl_certfile"):
            context.load_cert_chain(kwargs["ssl_certfile"], kwargs.get("ssl_keyfile"))
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ConfigurationError(
            f"the broker URL's TLS files cannot be used (ssl_ca_certs, ssl_certfile, "
            f"ssl_keyfile): {exc}"
        ) from None
    reqs = kwargs.get("ssl_cert_reqs", "required")
    check = kwargs.get("ssl_check_hostname", reqs == "required")
    context.check_hostname = bool(check) and reqs != "none"
    context.verify_mode = {
        "none": ssl.CERT_NONE,
        "optional": ssl.CERT_OPTIONAL,
        "required": ssl.CERT_REQUIRED,
    }[reqs]
    return context


#: Seconds since the last reply within which a blocking connection's next call counts as
#: part of a burst, and polls for its reply (``BlockingConnection.receive``).
BURST = 0.001


class BlockingConnection:
    """One blocking connection of a synchronous producer (see ``Clients.sync``).

    Connects on first use and after a failure; any failure mid-exchange closes it, so a
    late reply is never read as the answer to a later request. Not thread-safe: each
    thread takes its own from ``SyncConnections``.
    """

    __slots__ = ("backoff", "endpoint", "pool", "reader", "skip", "sock", "used")

    def __init__(self, endpoint: Endpoint, pool: SyncConnections | None = None) -> None:
        self.endpoint = endpoint
        #: The connections this one belongs to (see ``receive``).
        self.pool = pool
        self.sock: socket.socket | None = None
        self.reader: Reader = new_reader()
        self.used = 0.0
        #: Reads left that wait without polling, and how many the next miss skips (see
        #: ``receive``).
        self.skip = self.backoff = 0

    def send(self, data: bytes) -> None:
        """Write ``data`` (connecting first if needed)."""
        sock = self.sock
        endpoint = self.endpoint
        if sock is None or (
            endpoint.health_check and time.monotonic() - self.used > endpoint.health_check
        ):
            self.close()
            sock = self._connect()
        try:
            sock.sendall(data)
        except BaseException as error:
            self._failed(error, "could not send")
            raise

    def read(self) -> Any:
        """One reply; an error reply is returned, not raised."""
        reader = self.reader
        reply = reader.gets()
        if reply is not False:
            return reply
        sock = self.sock
        if sock is None:
            raise ConnectionError("not connected")
        try:
            while True:
                data = self.receive(sock)
                if not data:
                    raise ConnectionError("the server closed the connection")
                reader.feed(data)
                reply = reader.gets()
                if reply is not False:
                    self.used = time.monotonic()
                    return reply
        except BaseException as error:
            self._failed(error, "no reply")
            raise

    def receive(self, sock: socket.socket) -> bytes:
        """The server's next bytes. In a burst of calls (the last reply came less than
        ``BURST`` ago), polls for them without blocking for up to ``endpoint.busy_poll``
        before it sleeps: a thread that sleeps for a reply due in microseconds is woken late
        (on a virtual machine the idle CPU halts, and a wake-up costs tens of
        microseconds), and its next call runs on cold caches. A lone call sleeps at once:
        it would save one wake-up, while holding a CPU that, on a small machine, the
        server or a worker about to be woken may need. So does a call while other threads
        of the process are in calls of their own: they need the GIL and the CPU the
        polling would hold.

        Each poll that comes back empty-handed doubles the number of reads that skip
        polling (up to 1023), and one that gets its reply ends the skipping: a slow or
        distant server is waited for blockingly, so the polling spends CPU only where it
        saves time."""
        budget = self.endpoint.busy_poll
        pool = self.pool
        if (
            not budget
            or time.monotonic() - self.used > BURST
            or (pool is not None and pool.crowded())
        ):
            return sock.recv(65536)
        if self.skip:
            self.skip -= 1
            return sock.recv(65536)
        deadline = time.perf_counter() + budget
        while True:
            try:
                data = sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if time.perf_counter() < deadline:
                    continue
                self.backoff = min(2 * self.backoff + 1, 1023)
                self.skip = self.backoff
                return sock.recv(65536)
            self.backoff = 0
            return data

    def _failed(self, error: BaseException, what: str) -> None:
        """Drop the connection after a send or receive failed (its state is unknown). The
        kernel's timeouts (``SO_SNDTIMEO``, ``SO_RCVTIMEO``: see ``_connect``) surface as
        ``BlockingIOError`` and are raised as ``TimeoutError("<what> within N s")``."""
        self.close()
        if isinstance(error, BlockingIOError):
            raise TimeoutError(f"{what} within {self.endpoint.timeout:g} s") from None

    def _connect(self) -> socket.socket:
        endpoint = self.endpoint
        sock: socket.socket
        if endpoint.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(endpoint.connect_timeout)
                sock.connect(endpoint.path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection(
                (endpoint.host, endpoint.port), timeout=endpoint.connect_timeout
            )
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if endpoint.ssl is not None:
                sock = endpoint.ssl.wrap_socket(sock, server_hostname=endpoint.server_hostname())
                sock.settimeout(endpoint.timeout)
            else:
                # The kernel times each send and receive out: with a Python-level timeout,
                # CPython would poll() before every send and every receive.
                sock.settimeout(None)
                limit = _timeval(endpoint.timeout)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
            self.sock, self.reader = sock, new_reader()
            if endpoint.greeting:
                sock.sendall(endpoint.greeting)
                endpoint.check_greeting([self.read() for _ in range(endpoint.greeting_replies)])
        except BaseException:
            self.close()
            raise
        self.used = time.monotonic()
        return sock

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))


class SyncConnections:
    """The blocking connections of one process, one in use per thread at a time.

    ``idle`` is a stack that needs no lock (``list.append`` and ``list.pop`` are atomic);
    ``made`` counts the connections made (under a lock: that is rare), so that
    ``made - len(idle)`` are lent out. A forked child must not share its parent's sockets:
    ``pid`` tells the owner to start over.
    """

    __slots__ = ("_lock", "endpoint", "idle", "made", "pid")

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.idle: list[BlockingConnection] = []
        self.made = 0
        self.pid = os.getpid()
        self._lock = threading.Lock()

    def checkout(self) -> BlockingConnection:
        try:
            return self.idle.pop()
        except IndexError:
            with self._lock:
                self.made += 1
            return BlockingConnection(self.endpoint, self)

    def checkin(self, connection: BlockingConnection) -> None:
        self.idle.append(connection)

    def crowded(self) -> bool:
        """Whether more than one thread of this process is in a call."""
        return self.made - len(self.idle) > 1

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()
            with self._lock:
                self.made -= 1
