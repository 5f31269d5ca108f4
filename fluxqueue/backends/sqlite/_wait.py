"""How an idle fetch learns that there may be work, without burning CPU.

Two signals, whichever comes first:

* **Same process**: ``enqueue`` and ``requeue`` wake every fetch waiting on the same file
  in this process at once (an asyncio event set thread-safely), like the memory broker.
* **Other processes**: ``PRAGMA data_version`` changes when another connection commits.
  Reading it costs a few microseconds and takes no lock, so a waiting fetch checks it on an
  adaptive timer: every millisecond at first, backing off to ``MAX_POLL`` while nothing
  happens, back to the minimum on any commit.

A wake-up only means "look again": the fetch then probes with a read-only query and takes
the write lock only when a message is actually there.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fluxqueue.backends.sqlite._db import Database

MIN_POLL = 0.001
MAX_POLL = 0.05

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

    def _read_version(self) -> int:
        try:
            return self.db.call(_data_version)
        except sqlite3.Error:
            return -1  # busy or closed: treat as "changed" next time

    def wake(self) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.event.set)

    async def wait(self, timeout: float) -> None:
        """Return when there may be news, or after ``timeout`` seconds."""
        end = time.monotonic() + timeout
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
                return
            version = self._read_version()
            if version != self.version:
                self.version = version
                self.interval = MIN_POLL
                return
            self.interval = min(self.interval * 2, MAX_POLL)


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
            with _registry_lock:
                watches = _registry.get(self.path)
                if watches is not None:
                    watches.discard(watch)
                    if not watches:
                        del _registry[self.path]
