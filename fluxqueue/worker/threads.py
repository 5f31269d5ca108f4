"""Running sync task bodies in threads, and stopping them (timeout, abort, shutdown).

A thread cannot be killed; CPython can raise an exception in it at its next bytecode, the
technique Dramatiq's time limits use. Code blocked inside a C call (a socket read, a long
``time.sleep``) sees it only when that call returns.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any


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
