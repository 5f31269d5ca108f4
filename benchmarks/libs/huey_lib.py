"""Huey adapter: RedisHuey (blocking reads), consumer with 16 worker threads."""

import os
import time
from pathlib import Path

from _recorder import begin, end
from huey import RedisHuey

huey = RedisHuey("bench", url=os.environ.get("BENCH_URL"))


@huey.task()
def noop(ts):
    begin(ts)
    end(ts)


@huey.task()
def ssleep(ts):
    begin(ts)
    time.sleep(0.01)
    end(ts)


TASKS = {"noop": noop, "ssleep": ssleep}


def worker_argv(python, url, concurrency):
    return [str(Path(python).parent / "huey_consumer"), "huey_lib.huey", "-w", str(concurrency),
            "-k", "thread", "-q"]  # fmt: skip


def enqueue_one(n):
    for _ in range(n):
        noop(0.0)


def enqueue_bulk(n):
    raise NotImplementedError("no bulk enqueue API")


def fill(kind, n):
    if kind not in TASKS:
        raise NotImplementedError("no async tasks")
    for _ in range(n):
        TASKS[kind](0.0)


def ping():
    noop(-1.0)


def send_latency(n, spacing):
    for _ in range(n):
        noop(time.time())
        time.sleep(spacing)
