"""Running sync task bodies in threads, and stopping them (timeout, abort, shutdown).

A thread cannot be killed; CPython can raise an exception in it at its next bytecode, the
technique Dramatiq's time limits use. Code blocked inside a C call (a socket read, a long
``time.sleep``) sees it only when that call returns.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")


class Interrupt(BaseException):
    """Raised inside a task's thread to stop it; a BaseException so ``except Exception``
    in task code does not swallow it."""


def _set_async_exc(ident: int, exc: type[BaseException] | None) -> None:
    import ctypes  # only when a task is interrupted: most workers never load it

    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc) if exc is not None else None
    )


class ThreadSlot:
    """Remembers which thread runs one job so that :meth:`interrupt` reaches only it."""

    __slots__ = ("_ident", "_interrupted", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ident: int | None = None
        self._interrupted = False

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            if self._interrupted:
                raise Interrupt()
            self._ident = threading.get_ident()
        try:
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                self._ident = None
                if self._interrupted:  # drop an exception that has not been raised yet
                    _set_async_exc(threading.get_ident(), None)

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = True
            if self._ident is not None:
                _set_async_exc(self._ident, Interrupt)


class _Done:
    """Where a pool thread reports the outcome of a :meth:`DaemonPool.run` call."""

    __slots__ = ("future", "loop", "pool")

    def __init__(
        self, pool: DaemonPool, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]
    ) -> None:
        self.pool, self.loop, self.future = pool, loop, future

    def finish(self, ok: bool, value: Any) -> None:
        self.pool._finished(self.loop, self.future, ok, value)

    def cancel(self) -> bool:  # shutdown(cancel_futures=True) on a queued item
        return True


_Item = tuple["Future[Any] | _Done", Callable[..., Any], tuple[Any, ...]]


class DaemonPool(Executor):
    """A pool of up to ``size`` daemon threads for sync task bodies.

    ``ThreadPoolExecutor`` threads are joined when the interpreter exits, so one task stuck
    in a C call after its timeout or abort would keep a stopped worker process alive. These
    threads are daemons: once the worker has handed back or recorded every task, the
    process can exit whatever a runaway thread is doing.

    Waking threads sparingly: a thread that finishes a body looks for the next one before
    it sleeps, and a new item wakes a sleeping thread only when no thread is already
    looking. A thread that takes an item while others wait wakes one more thread first, so
    bodies that block (I/O, ``time.sleep``) still spread over the whole pool, while short
    bodies run back to back on one or two threads instead of waking all of them, each
    handing the GIL to the next: with 16 threads, that halves the cost of a short sync task.
    Threads are started on demand, and the most recently used sleeper wakes first.
    """

    def __init__(self, size: int, name: str = "fluxqueue-task") -> None:
        self._size = size
        self._name = name
        self._lock = threading.Lock()
        self._items: deque[_Item] = deque()
        self._sleepers: list[threading.Lock] = []  # one parked lock per sleeping thread
        self._looking = 0  # threads awake and about to take an item
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._done: list[tuple[asyncio.Future[Any], bool, Any]] = []
        self._done_lock = threading.Lock()
        self._woke_sleeper = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if kwargs:
            raise TypeError("DaemonPool.submit takes positional arguments only")
        future: Future[T] = Future()
        self._push((future, fn, args))
        return future

    def run(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        """Run ``fn(*args)`` in a pool thread; the result comes back as an asyncio future.

        Why not ``loop.run_in_executor``: that wakes the event loop (a write to its self-pipe,
        a callback, a concurrent future chained to an asyncio one) once per call. Here the
        threads put results on one list and wake the loop only when the list was empty, so
        tasks that finish together cost one wake-up. A cancelled future is simply not
        completed, as with ``run_in_executor`` (the thread itself is stopped by
        :class:`ThreadSlot`, if at all).
        """
        future: asyncio.Future[T] = loop.create_future()
        self._push((_Done(self, loop, future), fn, args))
        return future

    def _push(self, item: _Item) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the task thread pool is shut down")
            self._items.append(item)
            if self._looking == 0:
                self._wake()

    def _wake(self) -> None:
        """Get one more thread looking for work (called with the lock held)."""
        if self._sleepers:
            self._looking += 1
            self._woke_sleeper = True
            self._sleepers.pop().release()
        elif len(self._threads) < self._size:
            self._looking += 1
            name = f"{self._name}-{len(self._threads)}"
            thread = threading.Thread(target=self._serve, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def woke_sleeper(self) -> bool:
        """Whether a sleeping thread was woken since the last call: it is about to need
        the GIL (see ``Worker._fetch_loop``)."""
        woke, self._woke_sleeper = self._woke_sleeper, False
        return woke

    def _finished(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], ok: bool, value: Any
    ) -> None:
        with self._done_lock:
            self._done.append((future, ok, value))
            wake = len(self._done) == 1
        if wake:
            try:
                loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def _deliver(self) -> None:
        with self._done_lock:
            done, self._done = self._done, []
        for future, ok, value in done:
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _serve(self) -> None:
        parked = threading.Lock()
        parked.acquire()
        while True:
            with self._lock:  # this thread is counted in _looking here
                self._looking -= 1
                if self._items:
                    item: _Item | None = self._items.popleft()
                    if self._items and self._looking == 0:
                        self._wake()  # more waiting: in case this body blocks
                elif self._closed:
                    return
                else:
                    self._sleepers.append(parked)
                    item = None
            if item is None:
                parked.acquire()  # until _wake (which counted this thread) or shutdown
                continue
            self._execute(item)
            with self._lock:
                self._looking += 1

    @staticmethod
    def _execute(item: _Item) -> None:
        future, fn, args = item
        if isinstance(future, _Done):
            try:
                result = fn(*args)
            except BaseException as exc:  # the task wrapper reports errors; a backstop
                future.finish(False, exc)
            else:
                future.finish(True, result)
            return
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args)
        except BaseException as exc:  # the task wrapper reports errors; this is a backstop
            future.set_exception(exc)
        else:
            future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the threads once the queued items (none, with ``cancel_futures``) ran."""
        with self._lock:
            self._closed = True
            items = list(self._items) if cancel_futures else []
            if cancel_futures:
                self._items.clear()
            sleepers, self._sleepers = self._sleepers, []
            self._looking += len(sleepers)
            threads = list(self._threads)
        for future, _, _ in items:
            future.cancel()
        for parked in sleepers:
            parked.release()
        if wait:
            for thread in threads:
                thread.join()
