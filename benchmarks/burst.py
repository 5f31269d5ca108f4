"""In-process burst drain on Redis, for before/after comparisons of worker changes.

Usage: ``.venv/bin/python benchmarks/burst.py URL [n] [def|async|asleep|ssleep] [--profile]``
(no-op ``def`` or ``async def`` tasks, or tasks that sleep 10 ms with ``asyncio.sleep`` or
``time.sleep``) with a
private ``redis://127.0.0.1:PORT/0`` (the database is flushed first) or a fresh
``sqlite:////tmp/x.db`` (the file is deleted first). Prints tasks/s from the first
fetch to the end of the burst (enqueueing not included), and the worker's CPU time per task
(user + system, all threads), which varies less than the rate on a busy machine.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path

import redis

from fluxqueue import FluxQueue

url = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
kind = sys.argv[3] if len(sys.argv) > 3 else "def"
if url.startswith("redis"):
    redis.Redis.from_url(url.split("?")[0]).flushdb()
elif url.startswith("sqlite:///"):
    for suffix in ("", "-wal", "-shm"):
        Path(url[len("sqlite:///") :] + suffix).unlink(missing_ok=True)
fq = FluxQueue(url)


@fq.task(name="noop")
def noop() -> None:
    pass


@fq.task(name="anoop")
async def anoop() -> None:
    pass


@fq.task(name="asleep")
async def asleep() -> None:
    await asyncio.sleep(0.01)


@fq.task(name="ssleep")
def ssleep() -> None:
    time.sleep(0.01)


task = {"def": noop, "async": anoop, "asleep": asleep, "ssleep": ssleep}[kind]
for start in range(0, n, 5000):
    fq.enqueue_many([task.message() for _ in range(min(5000, n - start))])
profile = cProfile.Profile() if "--profile" in sys.argv else None
t0, c0 = time.perf_counter(), time.process_time()
if profile:
    profile.enable()
fq.run_worker(burst=True, concurrency=16)
if profile:
    profile.disable()
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
print(
    f"{kind} drain: {n / elapsed:,.0f} tasks/s ({n} in {elapsed:.2f}s), "
    f"worker CPU {cpu / n * 1e6:.1f} µs per task"
)
if profile:
    pstats.Stats(profile).sort_stats("tottime").print_stats(25)
