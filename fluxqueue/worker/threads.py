"""Running sync task bodies in threads, and stopping them (timeout, abort, shutdown).

A thread cannot be killed; CPython can raise an exception in it at its next bytecode, the
technique Dramatiq's time limits use. Code blocked inside a C call (a socket read, a long
``time.sleep``) sees it only when that call returns.
"""

from __future__ import annotations

import asyncio
import queue
import threading
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


class DaemonPool(Executor):
    """A fixed pool of daemon threads for sync task bodies.

    ``ThreadPoolExecutor`` threads are joined when the interpreter exits, so one task stuck
    in a C call after its timeout or abort would keep a stopped worker process alive. These
    threads are daemons: once the worker has handed back or recorded every task, the
    process can exit whatever a runaway thread is doing.
    """

    def __init__(self, size: int, name: str = "fluxqueue-task") -> None:
        self._size = size
        self._name = name
        self._work: queue.SimpleQueue[
            tuple[Future[Any] | _Done, Callable[..., Any], tuple[Any, ...]] | None
        ]
        self._work = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)  # one release per thread waiting for work
        self._lock = threading.Lock()
        self._closed = False
        self._done: list[tuple[asyncio.Future[Any], bool, Any]] = []
        self._done_lock = threading.Lock()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if kwargs:
            raise TypeError("DaemonPool.submit takes positional arguments only")
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the task thread pool is shut down")
            self._grow()
        self._work.put((future, fn, args))
        return future

    def run(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        """Run ``fn(*args)`` in a pool thread; the result comes back as an asyncio future.

        Why not ``loop.run_in_executor``: that wakes the event loop (a write to its self-pipe,
        a callback, a concurrent future chained to an asyncio one) once per call. Here the
        threads put results on one list and wake the loop only when the list was empty, so
        tasks that finish together cost one wake-up, which roughly halves the overhead of
        short sync tasks. A cancelled future is simply not completed, as with
        ``run_in_executor`` (the thread itself is stopped by :class:`ThreadSlot`, if at all).
        """
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the task thread pool is shut down")
            self._grow()
        self._work.put((_Done(self, loop, future), fn, args))
        return future

    def _grow(self) -> None:
        """Start a thread for the next item unless one is idle (as ``ThreadPoolExecutor``
        does): a worker that never runs more than a few sync tasks at once keeps only a
        few threads, each with its own stack and malloc arena."""
        if self._idle.acquire(blocking=False):
            return
        if len(self._threads) < self._size:
            thread = threading.Thread(
                target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

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
        while True:
            item = self._work.get()
            if item is None:
                return
            self._run(item)
            del item
            self._idle.release()

    @staticmethod
    def _run(item: tuple[Future[Any] | _Done, Callable[..., Any], tuple[Any, ...]]) -> None:
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
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        while cancel_futures:
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()
