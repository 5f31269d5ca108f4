"""Connections, schema and the busy-retry loop of the SQLite broker.

Why the calls run inline on the event loop instead of in a thread: a broker operation is one
short transaction (tens of microseconds without contention), about the cost of a thread
hop, so handing it to a thread would double its latency. What could freeze the loop is
waiting for another process's write lock, so SQLite's own busy handler is allowed only a
few milliseconds (``BUSY_TIMEOUT_MS``); past that the operation raises SQLITE_BUSY and
:meth:`Database.run` retries it after an ``asyncio.sleep`` with a growing delay, up to the
``lock_timeout``. Under normal load a user never sees "database is locked".

Connections are per thread and per process: the stdlib module forbids sharing one between
threads that may run at the same time, and SQLite forbids using one across ``fork``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from fluxqueue._url import float_option, mask_url
from fluxqueue.errors import BrokerConnectionError, BrokerError, ConfigurationError

log = logging.getLogger("fluxqueue.sqlite")

T = TypeVar("T")

#: How long SQLite's own busy handler may block the calling thread before we yield.
BUSY_TIMEOUT_MS = 5
#: Default for the ``lock_timeout`` URL option: how long an operation waits for a lock.
DEFAULT_LOCK_TIMEOUT = 30.0

SCHEMA_VERSION = 1

# Message rows move between three states. ``due`` is the moment the current state started
# (ready: since when it is ready, the FIFO key) or ends (scheduled: its eta; leased: the
# end of its lease), so one index finds both due delayed messages and expired leases.
READY, SCHEDULED, LEASED = 0, 1, 2

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state INTEGER NOT NULL,
    due REAL NOT NULL,
    receipt TEXT NOT NULL DEFAULT '',
    abort INTEGER NOT NULL DEFAULT 0,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, state, priority, due);
CREATE INDEX IF NOT EXISTS messages_due ON messages (state, due);
CREATE INDEX IF NOT EXISTS messages_abort ON messages (abort) WHERE abort = 1;
CREATE TABLE IF NOT EXISTS states (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    data BLOB NOT NULL,
    ttl REAL,
    expires_at REAL
);
CREATE INDEX IF NOT EXISTS states_expiry ON states (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS outputs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    data BLOB NOT NULL,
    expires_at REAL
);
CREATE INDEX IF NOT EXISTS outputs_task ON outputs (id, seq);
CREATE INDEX IF NOT EXISTS outputs_expiry ON outputs (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS dead (
    seq INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    data BLOB NOT NULL,
    reason TEXT NOT NULL,
    failed_at REAL NOT NULL,
    UNIQUE (queue, id)
);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    info TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tallies (
    key TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tally_members (
    key TEXT NOT NULL,
    member TEXT NOT NULL,
    PRIMARY KEY (key, member)
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
"""


def parse_url(url: str, options: dict[str, str]) -> tuple[str, float]:
    """The database's absolute path and the lock timeout; clear errors for bad URLs.

    ``sqlite:///rel/path.db`` is relative to the working directory, ``sqlite:////abs.db``
    absolute (SQLAlchemy's convention). Options left in ``options`` are rejected.
    """
    lock_timeout = float_option(options, "lock_timeout", DEFAULT_LOCK_TIMEOUT, url)
    if options:
        raise ConfigurationError(
            f"broker URL {mask_url(url)!r}: unknown option(s) {', '.join(sorted(options))}; "
            "the sqlite backend understands visibility_timeout and lock_timeout"
        )
    parts = urlsplit(url.strip())
    hint = "use sqlite:///relative/path.db or sqlite:////absolute/path.db"
    if parts.scheme.lower() != "sqlite":
        raise ConfigurationError(f"not a sqlite URL: {mask_url(url)!r}; {hint}")
    if parts.netloc:
        raise ConfigurationError(
            f"malformed sqlite URL {mask_url(url)!r}: it names a host ({parts.netloc!r}), "
            f"but SQLite is a local file (three slashes after 'sqlite:'); {hint}"
        )
    raw = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not raw or raw.endswith("/"):
        raise ConfigurationError(f"malformed sqlite URL {mask_url(url)!r}: no file name; {hint}")
    if raw == ":memory:" or raw.startswith("file:"):
        raise ConfigurationError(
            f"sqlite URL {mask_url(url)!r}: an in-memory database cannot be shared between "
            "connections; use memory:// for tests, or a file path"
        )
    if "\x00" in raw:
        raise ConfigurationError(f"malformed sqlite URL {mask_url(url)!r}: NUL in the path")
    path = os.path.abspath(raw)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise ConfigurationError(
            f"sqlite URL {mask_url(url)!r}: the directory {directory!r} does not exist "
            "(fluxqueue creates the database file, not its directory)"
        )
    if os.path.isdir(path):
        raise ConfigurationError(f"sqlite URL {mask_url(url)!r}: {path!r} is a directory")
    return path, lock_timeout


def is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another connection holds a lock we need; worth a retry."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class _Conn:
    """One sqlite3 connection, used by one thread; the lock lets ``close`` reach it safely."""

    __slots__ = ("__weakref__", "closed", "db", "lock", "pid", "ready")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.ready = False
        self.closed = False


class Database:
    """Per-thread connections to one file, schema setup, and the busy-retry loop."""

    def __init__(self, path: str, lock_timeout: float) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self._local = threading.local()
        self._all: weakref.WeakSet[_Conn] = weakref.WeakSet()
        self._all_lock = threading.Lock()
        self._schema_ready = False

    # -- connections -----------------------------------------------------------------

    def _connect(self) -> _Conn:
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
        except sqlite3.Error as exc:
            raise BrokerConnectionError(
                f"cannot open the SQLite database {self.path!r}: {exc}"
            ) from None
        conn = _Conn(db)
        with self._all_lock:
            self._all.add(conn)
        return conn

    def _setup(self, conn: _Conn) -> None:
        """Pragmas (per connection) and schema (once per broker); may raise SQLITE_BUSY."""
        db = conn.db
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning(
                "%s: could not switch to WAL mode (got %r); sharing is slower", self.path, mode
            )
        # NORMAL in WAL mode: a commit survives a process crash; only an OS crash or power
        # loss can drop the last commits. FULL would fsync on every commit.
        db.execute("PRAGMA synchronous = NORMAL")
        if not self._schema_ready:
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            self._schema_ready = True
            log.debug("opened %s", self.path)
        conn.ready = True

    def connection(self) -> _Conn:
        conn: _Conn | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.pid != os.getpid():
            # A connection inherited through fork is abandoned, never touched: closing it
            # could disturb the parent's locks.
            conn = self._connect()
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close every connection this process opened; threads reopen on next use."""
        pid = os.getpid()
        with self._all_lock:
            conns = list(self._all)
        for conn in conns:
            if conn.pid != pid:
                continue
            with conn.lock:
                if not conn.closed:
                    conn.closed = True
                    conn.db.close()

    # -- running operations ----------------------------------------------------------

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` once on this thread's connection; SQLite errors propagate."""
        conn = self.connection()
        with conn.lock:
            if conn.closed:  # closed by another thread between lookup and lock
                conn = self.connection()
            if not conn.ready:
                self._setup(conn)
            db = conn.db
            try:
                return fn(db)
            except BaseException:
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` (one transaction), retrying while another connection holds the lock."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.001
        while True:
            try:
                return self.call(fn)
            except sqlite3.Error as exc:
                if not is_busy(exc):
                    raise self._error(exc) from None
                if time.monotonic() + delay > deadline:
                    raise BrokerConnectionError(
                        f"the SQLite database {self.path!r} stayed locked by another "
                        f"connection for more than {self.lock_timeout:g}s (lock_timeout); "
                        "is a process holding a long transaction on it?"
                    ) from None
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.05)

    def _error(self, exc: sqlite3.Error) -> BrokerError:
        text = str(exc)
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
            return BrokerError(f"{self.path!r} is not a SQLite database (or is corrupt): {text}")
        if "unable to open" in text or "readonly" in text or "read-only" in text:
            return BrokerConnectionError(f"cannot use the SQLite database {self.path!r}: {text}")
        if "disk is full" in text or "disk I/O error" in text:
            # Transient like a lost connection: workers wait and retry, and the transaction
            # was rolled back, so nothing committed before is damaged or lost.
            return BrokerConnectionError(
                f"cannot write the SQLite database {self.path!r}: {text} (no space left on its "
                "disk, or a file size limit reached); the operation was rolled back and "
                "nothing already stored is lost: free some space"
            )
        return BrokerError(f"SQLite error on {self.path!r}: {text}")
