"""RQ adapter: the default forking worker (one job at a time per worker: RQ has no
concurrency inside a worker process), Queue.enqueue_many for bulk (one pipeline).
The work horse is a fresh fork per job, so the recorder counts in Redis."""

import asyncio
import os
import time
from pathlib import Path

os.environ["BENCH_SHARED"] = "1"

from _recorder import begin, end
from redis import Redis
from rq import Queue

queue = Queue(connection=Redis.from_url(os.environ.get("BENCH_URL", "redis://")))


def noop(ts):
    begin(ts)
    end(ts)


async def anoop(ts):
    begin(ts)
    end(ts)


async def asleep(ts):
    begin(ts)
    await asyncio.sleep(0.01)
    end(ts)


def ssleep(ts):
    begin(ts)
    time.sleep(0.01)
    end(ts)


TASKS = {"noop": noop, "anoop": anoop, "asleep": asleep, "ssleep": ssleep}


def worker_argv(python, url, concurrency):
    return [str(Path(python).parent / "rq"), "worker", "-u", url, "--logging_level", "WARNING"]


def enqueue_one(n):
    for _ in range(n):
        queue.enqueue(noop, 0.0)


def enqueue_bulk(n):
    queue.enqueue_many([Queue.prepare_data(noop, (0.0,)) for _ in range(n)])


def fill(kind, n):
    for start in range(0, n, 5000):
        count = min(5000, n - start)
        queue.enqueue_many([Queue.prepare_data(TASKS[kind], (0.0,)) for _ in range(count)])


def ping():
    queue.enqueue(noop, -1.0)


def send_latency(n, spacing):
    for _ in range(n):
        queue.enqueue(noop, time.time())
        time.sleep(spacing)
