"""The sync bridge works from threads and in forked children (gunicorn, multiprocessing)."""

import os
import threading

from fluxqueue import FluxQueue, Status


def test_sync_calls_from_many_threads() -> None:
    fq = FluxQueue("memory://")

    @fq.task
    def noop(i: int) -> None: ...

    handles = []
    lock = threading.Lock()

    def produce() -> None:
        for i in range(50):
            handle = noop(i)
            with lock:
                handles.append(handle)

    threads = [threading.Thread(target=produce) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({h.id for h in handles}) == 400
    fq.run_worker(burst=True)
    assert all(h.status() is Status.SUCCESS for h in handles)


def test_a_forked_child_gets_its_own_bridge() -> None:
    fq = FluxQueue("memory://")

    @fq.task
    def add(x: int, y: int) -> int:
        return x + y

    add(0, 0)  # start the bridge thread in the parent
    pid = os.fork()
    if pid == 0:  # child: the parent's loop thread does not exist here
        code = 1
        try:
            handle = add(1, 2)
            fq.run_worker(burst=True)
            code = 0 if handle.result(timeout=5) == 3 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
