"""The worker's event loop: epoll that waits with microsecond timeouts, same semantics."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading

import pytest

from fluxqueue import FluxQueue
from fluxqueue.worker import loop as worker_loop

linux = pytest.mark.skipif(worker_loop.PreciseEpollSelector is None, reason="epoll is Linux's")


async def _sleep_and_read() -> tuple[bool, bytes]:
    """A timer that must not fire early, and a socket read that must not wait for a timer."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.sleep(0.02)
    slept_enough = loop.time() >= start + 0.02
    left, right = socket.socketpair()
    left.setblocking(False)
    try:
        # The read below waits with a 30 s timer pending: readiness must end the wait.
        pending = loop.call_later(30, lambda: None)
        threading.Timer(0.05, right.sendall, (b"ready",)).start()
        data = await asyncio.wait_for(loop.sock_recv(left, 16), 10)
        pending.cancel()
    finally:
        left.close()
        right.close()
    return slept_enough, data


@linux
def test_the_worker_loop_waits_in_select_on_the_epoll_descriptor() -> None:
    loop = worker_loop.new_worker_loop()
    try:
        assert isinstance(loop, asyncio.SelectorEventLoop)
        assert type(loop._selector) is worker_loop.PreciseEpollSelector  # type: ignore[attr-defined]
        assert loop.run_until_complete(_sleep_and_read()) == (True, b"ready")
    finally:
        loop.close()


@linux
def test_past_select_limit_it_is_plain_epoll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_loop, "FD_SETSIZE", 0)
    assert worker_loop.run(_sleep_and_read()) == (True, b"ready")


def test_an_installed_event_loop_policy_is_respected() -> None:
    made: list[asyncio.AbstractEventLoop] = []

    class Policy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            made.append(super().new_event_loop())
            return made[-1]

    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(Policy())
    try:
        loop = worker_loop.new_worker_loop()
        loop.close()
    finally:
        asyncio.set_event_loop_policy(old)
    assert made == [loop]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 runs workers with asyncio.run")
@linux
def test_run_worker_runs_tasks_on_the_worker_loop() -> None:
    fq = FluxQueue("memory://")
    seen: list[str] = []

    @fq.task
    async def which_selector() -> None:
        selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
        seen.append(type(selector).__name__)

    which_selector.enqueue()
    fq.run_worker(burst=True)
    assert seen == ["PreciseEpollSelector"]
