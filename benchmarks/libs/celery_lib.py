"""Celery adapter: Redis broker, threads pool (one process, concurrency 16), no result
backend (Celery's default: results are only stored when a backend is configured)."""

import os
import time
from pathlib import Path

from _recorder import begin, end
from celery import Celery

app = Celery("celery_lib", broker=os.environ.get("BENCH_URL"))


@app.task
def noop(ts):
    begin(ts)
    end(ts)


@app.task
def ssleep(ts):
    begin(ts)
    time.sleep(0.01)
    end(ts)


TASKS = {"noop": noop, "ssleep": ssleep}


def worker_argv(python, url, concurrency):
    celery = str(Path(python).parent / "celery")
    return [celery, "-A", "celery_lib", "worker", "-P", "threads", "-c", str(concurrency),
            "-l", "WARNING"]  # fmt: skip


def enqueue_one(n):
    for _ in range(n):
        noop.delay(0.0)


def enqueue_bulk(n):
    raise NotImplementedError("no bulk enqueue API (a group sends one message per task)")


def fill(kind, n):
    if kind not in TASKS:
        raise NotImplementedError("no async tasks")
    task = TASKS[kind]
    for _ in range(n):
        task.delay(0.0)


def ping():
    noop.delay(-1.0)


def send_latency(n, spacing):
    for _ in range(n):
        noop.delay(time.time())
        time.sleep(spacing)
