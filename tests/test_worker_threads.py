"""The sync-task thread pool starts a thread only when none is idle."""

import threading
import time
from concurrent.futures import Future

from fluxqueue.worker.threads import DaemonPool


def test_sequential_tasks_reuse_one_thread() -> None:
    pool = DaemonPool(8)
    try:
        for i in range(20):
            assert pool.submit(lambda x: x * 2, i).result(timeout=5) == i * 2
        assert len(pool._threads) == 1
    finally:
        pool.shutdown()


def test_tasks_running_at_once_each_get_a_thread_up_to_the_size() -> None:
    pool = DaemonPool(4)
    release = threading.Event()
    started = threading.Semaphore(0)

    def block() -> str:
        started.release()
        release.wait(5)
        return threading.current_thread().name

    try:
        futures: list[Future[str]] = [pool.submit(block) for _ in range(6)]
        for _ in range(4):
            assert started.acquire(timeout=5)
        assert len(pool._threads) == 4
        release.set()
        names = {f.result(timeout=5) for f in futures}
        assert len(names) == 4
        assert len(pool._threads) == 4
    finally:
        release.set()
        pool.shutdown()


def test_waking_a_sleeping_thread_is_reported_once() -> None:
    pool = DaemonPool(2)
    try:
        assert pool.submit(lambda: 1).result(timeout=5) == 1  # starts a thread: no sleeper
        assert not pool.woke_sleeper()
        for _ in range(500):  # until the thread parks
            if pool._sleepers:
                break
            time.sleep(0.01)
        assert pool.submit(lambda: 2).result(timeout=5) == 2
        assert pool.woke_sleeper()
        assert not pool.woke_sleeper()
    finally:
        pool.shutdown()
