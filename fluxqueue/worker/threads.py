"""Running sync task bodies in threads, and stopping them (timeout, abort, shutdown).

A thread cannot be killed; CPython can raise an exception in it at its next bytecode, the
technique Dramatiq's time limits use. Code blocked inside a C call (a socket read, a long
``time.sleep``) sees it only when that call returns.
"""

from __future__ import annotations

import ctypes
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
            tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None
        ]
        self._work = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if kwargs:
            raise TypeError("DaemonPool.submit takes positional arguments only")
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the task thread pool is shut down")
            if len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._work.put((future, fn, args))
        return future

    def _serve(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
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
