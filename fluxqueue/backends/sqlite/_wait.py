"""How an idle fetch learns that there may be work, without burning CPU.

Two signals, whichever comes first:

* **Same process**: ``enqueue`` and ``requeue`` wake every fetch waiting on the same file
  in this process at once (an asyncio event set thread-safely), like the memory broker.
* **Other processes**: on Linux, an inotify watch on the ``-wal`` file: every commit
  appends to it, so the kernel wakes the event loop (through ``add_reader``) within
  microseconds, and an idle worker costs no CPU at all. Everywhere (and as a safety net),
  ``PRAGMA data_version``, which changes when another connection commits; reading it costs
  a few microseconds and takes no lock, so a waiting fetch checks it on an adaptive timer:
  every millisecond at first, backing off to ``MAX_POLL`` while nothing happens (to
  ``SAFETY_POLL`` when inotify watches), back to the minimum on any commit.

A wake-up only means "look again": the fetch then probes with a read-only query and takes
the write lock only when a message is actually there.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fluxqueue.backends.sqlite._db import Database

MIN_POLL = 0.001
MAX_POLL = 0.05
SAFETY_POLL = 0.5
#: After a wake-up that found nothing, wait at least this long before looking again, so a
#: busy database (other queues, other workers' acks) cannot make idle fetches spin.
MIN_GAP = 0.002
#: Tests turn this off to exercise the portable polling path.
USE_INOTIFY = sys.platform.startswith("linux")

log = logging.getLogger("fluxqueue.sqlite")

_IN_MODIFY = 0x00000002
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = getattr(os, "O_CLOEXEC", 0o2000000)
_libc: ctypes.CDLL | None = None
_libc_failed = False


def _inotify_lib() -> ctypes.CDLL | None:
    global _libc, _libc_failed
    if _libc is None and not _libc_failed:
        try:
            lib = ctypes.CDLL(None, use_errno=True)
            lib.inotify_init1.argtypes = [ctypes.c_int]
            lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
            _libc = lib
        except (OSError, AttributeError):
            _libc_failed = True
    return _libc


class _LoopInotify:
    """One inotify descriptor per event loop (and process), shared by its waiting fetches.

    Why shared and long-lived: closing an inotify descriptor waits for an RCU grace period
    in the kernel (about 10 ms, measured), and a user may hold only 128 of them by default.
    Any write to a watched file wakes every fetch of the loop; each then checks its own
    database, which is cheap.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        lib = _inotify_lib()
        if lib is None:
            raise OSError("inotify is not available")
        fd = lib.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        try:
            loop.add_reader(fd, self._on_event)
        except BaseException:
            os.close(fd)
            raise
        self.lib = lib
        self.fd: int = fd
        self.pid = os.getpid()
        self.watches: set[_Watch] = set()
        # The descriptor lives as long as the loop object; its reader dies with the loop.
        weakref.finalize(loop, os.close, fd)

    def add(self, target: str) -> None:
        """Watch ``target`` for writes; idempotent, and re-attaches a recreated file."""
        if self.lib.inotify_add_watch(self.fd, os.fsencode(target), _IN_MODIFY) < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"inotify_add_watch({target!r}): {os.strerror(errno)}")

    def _on_event(self) -> None:
        try:
            while os.read(self.fd, 65536):
                pass
        except OSError:
            pass  # EAGAIN: drained
        for watch in list(self.watches):
            watch.event.set()


_notifiers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopInotify | None] = (
    weakref.WeakKeyDictionary()
)


def _loop_inotify(loop: asyncio.AbstractEventLoop) -> _LoopInotify | None:
    """This loop's notifier, created on first use; None where inotify cannot be used."""
    if loop in _notifiers:
        notifier = _notifiers[loop]
        if notifier is None or notifier.pid == os.getpid():
            return notifier
    try:
        notifier = _LoopInotify(loop)
    except (OSError, NotImplementedError, RuntimeError, ValueError) as exc:
        log.debug("no inotify for this event loop (%s); polling PRAGMA data_version", exc)
        notifier = None
    _notifiers[loop] = notifier
    return notifier


_registry: dict[str, set[_Watch]] = {}
_registry_lock = threading.Lock()


def _data_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA data_version").fetchone()[0])


class _Watch:
    """One waiting fetch: its event loop, its wake-up event and the last data_version."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        self.interval = MIN_POLL
        self.version = self._read_version()
        self.inotify: _LoopInotify | None = None
        self.armed = not USE_INOTIFY  # True once inotify is watching, or never will be
        self.last_wake = 0.0

    def _read_version(self) -> int:
        try:
            return self.db.call(_data_version)
        except sqlite3.Error:
            return -1  # busy or closed: treat as "changed" next time

    def wake(self) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.event.set)

    def _arm(self) -> None:
        """Start watching the WAL (the main file when not in WAL mode) for commits."""
        self.armed = True
        notifier = _loop_inotify(self.loop)
        if notifier is None:
            return
        path = self.db.path
        target = path + "-wal" if os.path.exists(path + "-wal") else path
        try:
            notifier.add(target)
        except OSError as exc:
            log.debug("cannot watch %s (%s); polling PRAGMA data_version", target, exc)
            return
        notifier.watches.add(self)
        self.inotify = notifier

    def close(self) -> None:
        if self.inotify is not None:
            self.inotify.watches.discard(self)
            self.inotify = None

    async def wait(self, timeout: float) -> None:
        """Return when there may be news, or after ``timeout`` seconds."""
        if not self.armed:
            # Armed lazily, when a fetch first finds nothing; return at once so the caller
            # looks again and a commit made before the watch existed is not missed.
            self._arm()
            return
        end = time.monotonic() + timeout
        gap = self.last_wake + MIN_GAP - time.monotonic()
        if gap > 0:
            await asyncio.sleep(min(gap, timeout))
        ceiling = SAFETY_POLL if self.inotify is not None else MAX_POLL
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self.event.wait(), min(self.interval, left))
            except asyncio.TimeoutError:
                pass
            if self.event.is_set():
                self.event.clear()
                self.interval = MIN_POLL
                self.version = self._read_version()
                self.last_wake = time.monotonic()
                return
            version = self._read_version()
            if version != self.version:
                self.version = version
                self.interval = MIN_POLL
                self.last_wake = time.monotonic()
                return
            self.interval = min(self.interval * 2, ceiling)


class Waiter:
    """Wake-ups for fetches waiting on one database file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def notify(self) -> None:
        """Something was stored: wake this process's fetches on the same file."""
        with _registry_lock:
            watches = list(_registry.get(self.path, ()))
        for watch in watches:
            watch.wake()

    @asynccontextmanager
    async def watch(self, db: Database) -> AsyncIterator[_Watch]:
        # Registered (and data_version read) before the first look, so nothing committed
        # between that look and the wait can be missed.
        watch = _Watch(db)
        with _registry_lock:
            _registry.setdefault(self.path, set()).add(watch)
        try:
            yield watch
        finally:
            watch.close()
            with _registry_lock:
                watches = _registry.get(self.path)
                if watches is not None:
                    watches.discard(watch)
                    if not watches:
                        del _registry[self.path]
