"""saq adapter: Queue.from_url, worker settings with concurrency=16 (sync functions run in
its thread pool)."""

import asyncio
import os
import time
from pathlib import Path

from _recorder import begin, end
from saq import Queue

queue = Queue.from_url(os.environ.get("BENCH_URL", "redis://"))


async def noop(ctx, *, ts):
    begin(ts)
    end(ts)


async def asleep(ctx, *, ts):
    begin(ts)
    await asyncio.sleep(0.01)
    end(ts)


def ssleep(ctx, *, ts):
    begin(ts)
    time.sleep(0.01)
    end(ts)


settings = {"queue": queue, "functions": [noop, asleep, ssleep], "concurrency": 16}


def worker_argv(python, url, concurrency):
    return [str(Path(python).parent / "saq"), "saq_lib.settings", "--quiet"]


async def enqueue_one(n):
    for _ in range(n):
        await queue.enqueue("noop", ts=0.0)


def enqueue_bulk(n):
    raise NotImplementedError("no bulk enqueue API")


async def fill(kind, n):
    kind = "noop" if kind == "anoop" else kind
    for start in range(0, n, 500):
        await asyncio.gather(*(queue.enqueue(kind, ts=0.0) for _ in range(min(500, n - start))))


async def ping():
    await queue.enqueue("noop", ts=-1.0)


async def send_latency(n, spacing):
    for _ in range(n):
        await queue.enqueue("noop", ts=time.time())
        await asyncio.sleep(spacing)
