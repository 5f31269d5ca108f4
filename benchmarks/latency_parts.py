"""Where an idle worker's enqueue-to-start latency goes, part by part (Redis only).

    python benchmarks/latency_parts.py redis://127.0.0.1:PORT/0 [N]

Sends N no-op tasks (default 300) 10 ms apart to a fluxqueue worker in a child process,
as run.py's latency workload does, and stamps each one on the way (``time.time()``; the
stamps are wrappers around the functions named, installed in each process):

- ``producer``: from the start of ``task.enqueue()`` to its connection's ``send`` (the
  message built, encoded and packed; cold Python);
- ``to worker``: from there until the worker's fetch connection receives the reply (the
  wire, Redis running the enqueue, waking the blocked ``BLPOP``, and the fetch script);
- ``reply``: until ``broker.fetch`` returns the delivery;
- ``dispatch``: until the executor takes the job up (a task created and scheduled);
- ``start``: until the body runs (a ``def`` body: the hand-over to a pool thread; an
  ``async def`` body: the task's first step).

Then the same round trip without fluxqueue, on bare sockets: ``RPUSH`` to a worker blocked
in ``BLPOP`` (the floor), and fluxqueue's own commands (its ``MULTI`` enqueue; ``BLPOP`` and
the fetch script in one write). Last, what a little Python costs cold against warm. Prints
one JSON line per kind of body, one for the bare sockets and one for the Python (cold and
warm): medians in µs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "libs"))

from floor_lib import Bare

from fluxqueue import FluxQueue
from fluxqueue.backends.redis import connection, wire
from fluxqueue.backends.redis.resp import pack
from fluxqueue.backends.redis.scripts import script

SPACING = 0.01
BASE = "{lat}:"
#: When the producer's connection last sent (stamped in ``main``).
SENT: dict[str, float] = {}


def _stamp(
    owner: Any, name: str, into: dict[str, float], key: str, *, awaited: bool = False
) -> None:
    """Wrap ``owner.name`` to record in ``into[key]`` when it is called; with ``awaited``
    (a coroutine function), when the coroutine it returns is done."""
    original = getattr(owner, name)
    if awaited:

        async def returned(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs)
            into[key] = time.time()
            return result

        setattr(owner, name, returned)
        return

    def called(*args: Any, **kwargs: Any) -> Any:
        into[key] = time.time()
        return original(*args, **kwargs)

    setattr(owner, name, called)


def _app(url: str, stamps: dict[str, float], out: str) -> tuple[FluxQueue, Any, Any]:
    """The app both processes load: two no-op tasks that record the worker's stamps."""
    fq = FluxQueue(url)
    n = int(os.environ.get("LATENCY_N", "0"))
    rows: list[list[float]] = []

    def record(ts: float) -> None:
        now = time.time()
        if ts < 0:  # a readiness ping
            open(out + ".ready", "w").close()
            return
        rows.append([ts, stamps["received"], stamps["fetched"], stamps["process"], now])
        if len(rows) == n:
            with open(out + ".tmp", "w") as f:
                json.dump(rows, f)
            os.replace(out + ".tmp", out)

    @fq.task(name="lat_def")
    def lat_def(ts: float) -> None:
        record(ts)

    @fq.task(name="lat_async")
    async def lat_async(ts: float) -> None:
        record(ts)

    return fq, lat_def, lat_async


def _worker(url: str, out: str) -> None:
    from fluxqueue.worker import Worker, executor
    from fluxqueue.worker.loop import run

    stamps: dict[str, float] = {}
    _stamp(connection._Protocol, "data_received", stamps, "received")
    _stamp(executor.Executor, "process", stamps, "process")
    fq, _, _ = _app(url, stamps, out)
    _stamp(type(fq.broker), "fetch", stamps, "fetched", awaited=True)
    run(Worker(fq, concurrency=16, handle_signals=False).run())


def _through_worker(url: str, kind: str, n: int) -> dict[str, Any]:
    out = f"/tmp/fluxqueue-latency-{os.getpid()}-{kind}.json"
    for path in (out, out + ".ready"):
        if os.path.exists(path):
            os.remove(path)
    env = dict(os.environ, LATENCY_N=str(n))
    child = subprocess.Popen([sys.executable, __file__, "--worker", url, out], env=env)
    _, lat_def, lat_async = _app(url, {}, out)
    task = lat_def if kind == "def" else lat_async
    producer: dict[float, float] = {}
    try:
        while not os.path.exists(out + ".ready"):
            task.enqueue(-1.0)
            time.sleep(0.2)
        time.sleep(0.5)
        for _ in range(n):
            ts = time.time()
            task.enqueue(ts)
            producer[ts] = SENT["send"]
            time.sleep(SPACING)
        deadline = time.monotonic() + 30
        while not os.path.exists(out) and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(out) as f:
            rows = json.load(f)
    finally:
        child.terminate()
        child.wait()
    parts: dict[str, list[float]] = {}
    for ts, received, fetched, process, begun in rows:
        send = producer[ts]
        for key, value in (("producer", send - ts), ("to worker", received - send),
                           ("reply", fetched - received), ("dispatch", process - fetched),
                           ("start", begun - process), ("total", begun - ts)):  # fmt: skip
            parts.setdefault(key, []).append(value)
    return {"body": kind, **{k: round(statistics.median(v) * 1e6) for k, v in parts.items()}}


def enqueue_commands(i: int, data: bytes, base: str = BASE) -> list[tuple[Any, ...]]:
    """What ``task.enqueue()`` sends for message ``i`` (see ``_one_multi`` in the Redis
    broker), for a bare socket to send."""
    key, wake = base + f"m:{i}", base + "q:default:wake"
    return [("MULTI",), ("HSET", key, "d", data, "q", "default", "p", 2, "t", ""),
            ("SADD", base + "queues", "default"),
            ("RPUSH", base + "q:default:incoming", f"2 {i}"),
            ("LPUSH", wake, "1"), ("LTRIM", wake, 0, 63), ("EXEC",)]  # fmt: skip


def _bare(url: str, n: int) -> dict[str, Any]:
    """Median latency on bare sockets, from just before the producer's write to the
    consumer's wake-up: the floor (``RPUSH``/``BLPOP``) and fluxqueue's commands."""
    fetch = script("fetch")
    wake = BASE + "q:default:wake"
    setup = Bare(url)
    setup.send(pack(("SCRIPT", "LOAD", fetch.source)), 1)

    def floor_send(i: int, ts: bytes) -> tuple[bytes, int]:
        return pack(("RPUSH", wake, ts)), 1

    def floor_wait() -> tuple[bytes, int, Callable[[list[Any]], bytes]]:
        return pack(("BLPOP", wake, "5")), 1, lambda replies: replies[0][1]

    def ours_send(i: int, ts: bytes) -> tuple[bytes, int]:
        commands = enqueue_commands(i, ts)
        return b"".join(pack(c) for c in commands), len(commands)

    def ours_wait() -> tuple[bytes, int, Callable[[list[Any]], bytes]]:
        lease = fetch.evalsha([BASE + "seq"], [BASE, 1, 30_000, "default"])
        return pack(("BLPOP", wake, "5")) + lease, 2, lambda replies: replies[1][3]

    result: dict[str, Any] = {"body": "bare sockets"}
    for name, send, wait in (("floor", floor_send, floor_wait), ("ours", ours_send, ours_wait)):
        setup.send(pack(("FLUSHDB",)), 1)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the consumer
            consumer, lat = Bare(url), []
            for _ in range(n):
                data, count, ts_of = wait()
                replies = consumer.send(data, count)
                lat.append(time.time() - float(ts_of(replies)))
            os.write(write, json.dumps(statistics.median(lat)).encode())
            os._exit(0)
        producer = Bare(url)
        time.sleep(0.3)
        for i in range(n):
            time.sleep(SPACING)
            data, count = send(i, repr(time.time()).encode())
            producer.send(data, count)
        os.waitpid(pid, 0)
        result[name] = round(float(os.read(read, 100)) * 1e6)
        os.close(read)
        os.close(write)
    return result


def _cold_python(n: int) -> dict[str, Any]:
    """What a little Python costs cold (each call after ``SPACING`` asleep) and warm (back
    to back): medians in µs."""
    from fluxqueue.serializers.json import JSONSerializer

    def trivial(x: int) -> int:
        return x + 1

    def forty_calls() -> None:
        x = 0
        for _ in range(40):
            x = trivial(x)

    dumps = JSONSerializer().dumps
    cases: dict[str, Callable[[], object]] = {
        "json.dumps of a 3-key dict": lambda: json.dumps({"a": 1, "b": [1, 2], "c": "x"}),
        "40 trivial calls": forty_calls,
        "fluxqueue JSON of [time.time()]": lambda: dumps([time.time()]),
    }
    result: dict[str, Any] = {"body": "cold python"}
    for name, call in cases.items():
        cold, warm = [], []
        for _ in range(n):
            time.sleep(SPACING)
            started = time.perf_counter()
            call()
            cold.append(time.perf_counter() - started)
        for _ in range(n):
            started = time.perf_counter()
            call()
            warm.append(time.perf_counter() - started)
        result[name] = [round(statistics.median(cold) * 1e6, 1),
                        round(statistics.median(warm) * 1e6, 1)]  # fmt: skip
    return result


def main() -> None:
    if sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3])
        return
    url = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    redis.Redis.from_url(url.split("?")[0]).flushdb()
    _stamp(wire.BlockingConnection, "send", SENT, "send")
    for kind in ("def", "async"):
        print(json.dumps(_through_worker(url, kind, n)), flush=True)
    print(json.dumps(_bare(url, n)), flush=True)
    print(json.dumps(_cold_python(n)), flush=True)


if __name__ == "__main__":
    main()
