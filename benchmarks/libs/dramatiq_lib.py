"""Dramatiq adapter: RedisBroker, one process with 16 threads, AsyncIO middleware for
async actors (Dramatiq's documented way)."""

import asyncio
import os
import time
from pathlib import Path

import dramatiq
from _recorder import begin, end
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware.asyncio import AsyncIO

broker = RedisBroker(url=os.environ.get("BENCH_URL"))
broker.add_middleware(AsyncIO())
dramatiq.set_broker(broker)


@dramatiq.actor
def noop(ts):
    begin(ts)
    end(ts)


@dramatiq.actor
async def asleep(ts):
    begin(ts)
    await asyncio.sleep(0.01)
    end(ts)


@dramatiq.actor
async def anoop(ts):
    begin(ts)
    end(ts)


@dramatiq.actor
def ssleep(ts):
    begin(ts)
    time.sleep(0.01)
    end(ts)


TASKS = {"noop": noop, "anoop": anoop, "asleep": asleep, "ssleep": ssleep}


def worker_argv(python, url, concurrency):
    return [
        str(Path(python).parent / "dramatiq"),
        "dramatiq_lib",
        "-p",
        "1",
        "-t",
        str(concurrency),
    ]


def enqueue_one(n):
    for _ in range(n):
        noop.send(0.0)


def enqueue_bulk(n):
    raise NotImplementedError("no bulk enqueue API")


def fill(kind, n):
    for _ in range(n):
        TASKS[kind].send(0.0)


def ping():
    noop.send(-1.0)


def send_latency(n, spacing):
    for _ in range(n):
        noop.send(time.time())
        time.sleep(spacing)
