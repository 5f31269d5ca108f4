"""Runs the async broker API for synchronous callers.

One daemon thread per process runs an event loop; sync calls submit a coroutine to it and
wait. The thread is created on first use and again in a forked child (gunicorn,
multiprocessing), which never inherits a running loop from its parent. Brokers keep their
connections per event loop, so this loop's connections are its own.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="fluxqueue-sync", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()


_current: _LoopThread | None = None
_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _current, _lock
    _current = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def _loop_thread() -> _LoopThread:
    global _current
    current = _current
    if current is None:
        with _lock:
            if _current is None:
                _current = _LoopThread()
            current = _current
    return current


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the bridge loop and return its result (or raise its exception)."""
    runner = _loop_thread()
    if threading.current_thread() is runner.thread:
        coro.close()
        raise RuntimeError("a synchronous fluxqueue call was made from the bridge loop itself")
    future = asyncio.run_coroutine_threadsafe(coro, runner.loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise
