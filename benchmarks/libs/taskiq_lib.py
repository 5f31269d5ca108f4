"""taskiq adapter: taskiq-redis RedisStreamBroker (acknowledged delivery) with the Redis
result backend, as taskiq-redis documents; one worker process, 16 async tasks."""

import asyncio
import os
import time
from pathlib import Path

from _recorder import begin, end
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

URL = os.environ.get("BENCH_URL", "redis://")
broker = RedisStreamBroker(URL).with_result_backend(RedisAsyncResultBackend(URL))


@broker.task
async def noop(ts):
    begin(ts)
    end(ts)


@broker.task
async def asleep(ts):
    begin(ts)
    await asyncio.sleep(0.01)
    end(ts)


@broker.task
def ssleep(ts):
    begin(ts)
    time.sleep(0.01)
    end(ts)


TASKS = {"noop": noop, "anoop": noop, "asleep": asleep, "ssleep": ssleep}


def worker_argv(python, url, concurrency):
    return [str(Path(python).parent / "taskiq"), "worker", "taskiq_lib:broker", "--workers", "1",
            "--max-async-tasks", str(concurrency), "--max-threadpool-threads", str(concurrency),
            "--log-level", "WARNING"]  # fmt: skip


async def enqueue_one(n):
    await broker.startup()
    for _ in range(n):
        await noop.kiq(0.0)


def enqueue_bulk(n):
    raise NotImplementedError("no bulk enqueue API")


async def fill(kind, n):
    await broker.startup()
    for start in range(0, n, 500):
        await asyncio.gather(*(TASKS[kind].kiq(0.0) for _ in range(min(500, n - start))))


async def ping():
    await broker.startup()
    await noop.kiq(-1.0)


async def send_latency(n, spacing):
    await broker.startup()
    for _ in range(n):
        await noop.kiq(time.time())
        await asyncio.sleep(spacing)
