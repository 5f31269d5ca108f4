"""The worker's event loop: asyncio's own, with timers that fire on time.

On Linux asyncio waits in ``epoll_wait``, which counts its timeout in whole milliseconds,
and the standard selector rounds every wait up. A timer (``asyncio.sleep``, a
``wait_for`` timeout) therefore fires up to a millisecond late, on average half of one:
5% of a 10 ms sleep. Worse, the timers of tasks that started together come due within the
same millisecond and are woken together, so a worker running many short sleeps loses that
margin on every one of them.

:class:`PreciseEpollSelector` keeps epoll but waits differently: when the loop would
sleep, it first blocks in ``select()`` on the epoll descriptor itself (``select`` takes
microseconds, and an epoll descriptor is readable as soon as any of its sockets is), then
collects the events with a non-blocking ``epoll_wait``. That is one more system call per
sleep, none per busy iteration. Elsewhere, or when the descriptor is past ``select``'s
limit (``FD_SETSIZE``), the loop is asyncio's default. An event loop policy the
application installed (uvloop's, say) is always respected.
"""

from __future__ import annotations

import asyncio
import select
import selectors
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["PreciseEpollSelector", "new_worker_loop", "run"]

T = TypeVar("T")

#: select()'s descriptor limit on Linux.
FD_SETSIZE = 1024


if hasattr(selectors, "EpollSelector"):

    class PreciseEpollSelector(selectors.EpollSelector):
        """An epoll selector whose waits end within microseconds of their timeout."""

        def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if timeout is not None and timeout > 0:
                fd = self.fileno()
                if fd < FD_SETSIZE:
                    select.select([fd], [], [], timeout)
                    timeout = 0
            return super().select(timeout)

else:  # pragma: no cover - not Linux
    PreciseEpollSelector = None  # type: ignore[assignment,misc]


def new_worker_loop() -> asyncio.AbstractEventLoop:
    """A new event loop for a worker: asyncio's, with :class:`PreciseEpollSelector` when
    the default policy would use epoll; whatever an installed policy makes otherwise."""
    policy = asyncio.get_event_loop_policy()
    if PreciseEpollSelector is None or type(policy) is not asyncio.DefaultEventLoopPolicy:
        return policy.new_event_loop()
    return asyncio.SelectorEventLoop(PreciseEpollSelector())


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a loop from :func:`new_worker_loop` (Python 3.11 and later;
    on 3.10, plain ``asyncio.run``)."""
    if sys.version_info < (3, 11):  # pragma: no cover - asyncio.Runner is new in 3.11
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=new_worker_loop) as runner:
        return runner.run(main)
