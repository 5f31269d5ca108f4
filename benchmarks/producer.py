"""Producer cost on Redis: CPU per enqueued task in this process, and Redis's own time.

    python benchmarks/producer.py redis://127.0.0.1:PORT/0 MODE [N] [--profile]

Enqueues N no-op tasks (default 10,000) one call at a time (``one``) or in one
``enqueue_many`` (``bulk``, messages built with ``task.message()`` inside the timing), on a
fresh key prefix, after a warm-up. ``parts`` splits one enqueue's wall time (see
``_parts``). Two modes measure the same from a bare socket, without
fluxqueue's Python: ``bare-rpush``, one ``RPUSH`` of a float per task (the floor, as
run.py's floor row), and ``bare-multi``, the ``MULTI`` that ``task.enqueue()`` sends.

Prints one JSON line: the rate, the producer's CPU time per task (``time.process_time``,
which varies less than the rate on a shared machine) and Redis's time per task and per
call (``INFO commandstats`` after ``CONFIG RESETSTAT``; the server must be private to the
run). With ``--profile``, prints the cProfile of the timed part (sorted by own time)
instead. For before/after comparisons run it alternately from two checkouts
(``PYTHONPATH=/path/to/old``), several times each.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from typing import Any

import redis
from latency_parts import Bare, enqueue_commands

from fluxqueue import FluxQueue
from fluxqueue.backends.redis.resp import pack

#: The commands of one enqueue call: the script, or (a single message) MULTI ... EXEC,
#: whose time Redis books under EXEC. MULTI itself and what EXEC runs are not counted
#: again: their own entries cover the time inside EXEC.
_CALLS = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_exec")


def _redis_usec(client: redis.Redis, names: tuple[str, ...]) -> tuple[float, int]:
    """Redis's time in the producer's calls (the commands ``names``), and how many calls."""
    stats = client.info("commandstats")
    total, calls = 0.0, 0
    for name in names:
        if name in stats:
            total += float(stats[name]["usec"])
            calls += int(stats[name]["calls"])
    return total, calls


def _parts(fq: FluxQueue, task: Any, base: str, rounds: int = 10, block: int = 2000) -> Any:
    """Wall time per single enqueue, in µs (median of ``rounds`` interleaved blocks), as
    more of ``task.enqueue()`` is left in: the ``MULTI`` packed beforehand and sent on the
    producer's own connection; packed per message by the broker (``_one_multi``, with the
    message's encoding); the broker's and the app's layers (``fq.enqueue_many`` of a
    message built beforehand); and the whole call, message included."""
    broker: Any = fq.broker
    ttl, sync = broker._ttl(None), broker._clients.sync()
    connection = sync.checkout()
    data = task.message(0.0).encode()

    def prepacked(messages: list[Any]) -> None:
        for payload in packed:
            connection.send(payload)
            [connection.read() for _ in range(7)]

    def one_multi(messages: list[Any]) -> None:
        for message in messages:
            message.spend_minted()
            commands = broker._one_multi(message, ttl)
            connection.send(b"".join(commands))
            [connection.read() for _ in commands]

    def layers(messages: list[Any]) -> None:
        for message in messages:
            fq.enqueue_many([message])

    def whole(messages: list[Any]) -> None:
        for _ in messages:
            task.enqueue(0.0)

    steps = {"packed": prepacked, "one_multi": one_multi, "layers": layers, "whole": whole}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds):
        packed = [
            b"".join(pack(c) for c in enqueue_commands(r * block + i, data, base))
            for i in range(block)
        ]
        for name, step in steps.items():
            messages = [task.message(0.0) for _ in range(block)]
            started = time.perf_counter()
            step(messages)
            times[name].append((time.perf_counter() - started) / block * 1e6)
    sync.checkin(connection)
    return {"mode": "parts", **{k: round(statistics.median(v), 1) for k, v in times.items()}}


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    url, mode = args[0], args[1]
    n = int(args[2]) if len(args) > 2 else 10_000
    profile = "--profile" in sys.argv
    prefix = f"bench{os.getpid()}"
    sep = "&" if "?" in url else "?"
    fq = FluxQueue(f"{url}{sep}prefix={prefix}")

    @fq.task(name="noop")
    def noop(ts: float) -> None: ...

    client = redis.Redis.from_url(url.split("?")[0])
    for _ in range(200):  # warm-up: connections, script cache, encoder caches
        noop.enqueue(0.0)
    fq.enqueue_many([noop.message(0.0) for _ in range(500)])
    if mode == "parts":
        print(json.dumps(_parts(fq, noop, f"{{{prefix}}}:")))
        client.delete(*client.keys(f"{{{prefix}}}:*"))
        return
    if mode == "bare-multi":  # packed before the timing: only the sends are measured
        data, base = noop.message(0.0).encode(), f"{{{prefix}}}:"
        bare = [b"".join(pack(c) for c in enqueue_commands(i, data, base)) for i in range(n)]
        replies = len(enqueue_commands(0, data, base))
    client.config_resetstat()
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    if mode == "one":
        for _ in range(n):
            noop.enqueue(0.0)
    elif mode == "bare-rpush":  # the floor: one command per task, no envelope
        rpush = Bare(url).call
        for _ in range(n):
            rpush(b"RPUSH", b"{%s}:floor" % prefix.encode(), b"0.0")
    elif mode == "bare-multi":  # what task.enqueue() sends, from a bare socket
        send = Bare(url).send
        for payload in bare:
            send(payload, replies)
    else:
        fq.enqueue_many([noop.message(0.0) for _ in range(n)])
    if profiler is not None:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    usec, calls = _redis_usec(client, ("cmdstat_rpush",) if mode == "bare-rpush" else _CALLS)
    keys = client.keys(f"{{{prefix}}}:*")
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    print(
        json.dumps(
            {
                "mode": mode,
                "n": n,
                "rate": round(n / wall),
                "cpu_us_per_task": round(cpu / n * 1e6, 2),
                "redis_us_per_task": round(usec / n, 2),
                "redis_us_per_call": round(usec / max(calls, 1), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
