"""arq adapter: WorkerSettings with max_jobs=16 and arq's defaults otherwise (it polls the
queue every poll_delay=0.5 s when idle). arq runs coroutines only; a blocking function
goes through run_in_executor, as arq's documentation shows."""

import asyncio
import os
import time
from pathlib import Path

from _recorder import begin, end
from arq import create_pool
from arq.connections import RedisSettings

SETTINGS = RedisSettings.from_dsn(os.environ.get("BENCH_URL", "redis://"))


async def noop(ctx, ts):
    begin(ts)
    end(ts)


async def asleep(ctx, ts):
    begin(ts)
    await asyncio.sleep(0.01)
    end(ts)


async def ssleep(ctx, ts):
    begin(ts)
    await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.01)
    end(ts)


class WorkerSettings:
    functions = [noop, asleep, ssleep]
    redis_settings = SETTINGS
    max_jobs = 16


def worker_argv(python, url, concurrency):
    return [str(Path(python).parent / "arq"), "arq_lib.WorkerSettings"]


async def enqueue_one(n):
    pool = await create_pool(SETTINGS)
    for _ in range(n):
        await pool.enqueue_job("noop", 0.0)


def enqueue_bulk(n):
    raise NotImplementedError("no bulk enqueue API")


async def fill(kind, n):
    kind = "noop" if kind == "anoop" else kind
    pool = await create_pool(SETTINGS)
    for start in range(0, n, 500):
        await asyncio.gather(*(pool.enqueue_job(kind, 0.0) for _ in range(min(500, n - start))))


async def ping():
    pool = await create_pool(SETTINGS)
    await pool.enqueue_job("noop", -1.0)


async def send_latency(n, spacing):
    pool = await create_pool(SETTINGS)
    for _ in range(n):
        await pool.enqueue_job("noop", time.time())
        await asyncio.sleep(spacing)
