"""fluxqueue adapter: Redis, SQLite or memory, picked by the URL in ``BENCH_URL``."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from _recorder import begin, end

from fluxqueue import FluxQueue

URL = os.environ.get("BENCH_URL", "memory://")
fq = FluxQueue(URL)


@fq.task(name="noop")
def noop(ts: float) -> None:
    begin(ts)
    end(ts)


@fq.task(name="asleep")
async def asleep(ts: float) -> None:
    begin(ts)
    await asyncio.sleep(0.01)
    end(ts)


@fq.task(name="ssleep")
def ssleep(ts: float) -> None:
    begin(ts)
    time.sleep(0.01)
    end(ts)


@fq.task(name="anoop")
async def anoop(ts: float) -> None:
    begin(ts)
    end(ts)


TASKS = {"noop": noop, "asleep": asleep, "ssleep": ssleep, "anoop": anoop}
IN_PROCESS = URL.startswith("memory:")


def worker_argv(python: str, url: str, concurrency: int) -> list[str]:
    return [
        python, "-m", "fluxqueue.cli", "start", "-t", "fluxqueue_lib", "-b", url,
        "-c", str(concurrency), "--log-level", "warning",
    ]  # fmt: skip


def enqueue_one(n: int) -> None:
    for _ in range(n):
        noop.enqueue(0.0)


def enqueue_bulk(n: int) -> None:
    fq.enqueue_many([noop.message(0.0) for _ in range(n)])


def fill(kind: str, n: int) -> None:
    task = TASKS[kind]
    for start in range(0, n, 5000):
        fq.enqueue_many([task.message(0.0) for _ in range(min(5000, n - start))])


def ping() -> None:
    noop.enqueue(-1.0)


def send_latency(n: int, spacing: float) -> None:
    for _ in range(n):
        noop.enqueue(time.time())
        time.sleep(spacing)


# -- memory: producer and worker share one process ---------------------------------


def drain_in_process(kind: str, n: int, concurrency: int) -> None:
    fill(kind, n)
    fq.run_worker(burst=True, concurrency=concurrency)


def latency_in_process(n: int, spacing: float, concurrency: int) -> None:
    from fluxqueue.worker import Worker

    loop = asyncio.new_event_loop()
    worker = Worker(fq, concurrency=concurrency, handle_signals=False)
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),))
    thread.start()
    try:
        time.sleep(0.5)
        send_latency(n, spacing)
        time.sleep(0.2)
    finally:
        loop.call_soon_threadsafe(worker.stop)
        thread.join()
