"""streaq adapter: one Worker with concurrency=16 (sync tasks in its thread pool),
Worker.enqueue_many for bulk (one pipeline)."""

import asyncio
import os
import time
from pathlib import Path

from _recorder import begin, end
from streaq import Worker

worker = Worker(redis_url=os.environ.get("BENCH_URL", "redis://"), concurrency=16)


@worker.task()
async def noop(ts: float) -> None:
    begin(ts)
    end(ts)


@worker.task()
async def asleep(ts: float) -> None:
    begin(ts)
    await asyncio.sleep(0.01)
    end(ts)


@worker.task()
def ssleep(ts: float) -> None:
    begin(ts)
    time.sleep(0.01)
    end(ts)


TASKS = {"noop": noop, "anoop": noop, "asleep": asleep, "ssleep": ssleep}


def worker_argv(python, url, concurrency):
    return [str(Path(python).parent / "streaq"), "run", "streaq_lib:worker"]


async def enqueue_one(n):
    async with worker:
        for _ in range(n):
            await noop.enqueue(0.0)


async def enqueue_bulk(n):
    async with worker:
        await worker.enqueue_many([noop.enqueue(0.0) for _ in range(n)])


async def fill(kind, n):
    async with worker:
        for start in range(0, n, 5000):
            count = min(5000, n - start)
            await worker.enqueue_many([TASKS[kind].enqueue(0.0) for _ in range(count)])


async def ping():
    async with worker:
        await noop.enqueue(-1.0)


async def send_latency(n, spacing):
    async with worker:
        for _ in range(n):
            await noop.enqueue(time.time())
            await asyncio.sleep(spacing)
