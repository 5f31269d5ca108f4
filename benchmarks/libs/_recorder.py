"""What every benchmark task calls, in every library: counts tasks and stamps times.

The worker process learns the plan from its environment: ``BENCH_N`` tasks to expect and
``BENCH_OUT``, the file to write when the last one is done (JSON: the wall time the first
task started, the time the last one finished, and the enqueue-to-start latencies of tasks
that carried their enqueue time). A task called with ``ts < 0`` is a readiness ping: it
touches ``BENCH_OUT + ".ready"`` and is not counted.

The counter lives in the worker's memory (``itertools.count`` is atomic under the GIL), so
it costs nothing per task; a library whose worker forks a child per job (RQ) sets
``BENCH_SHARED=1`` and the count goes to Redis instead.
"""

from __future__ import annotations

import itertools
import json
import os
import time

_N = int(os.environ.get("BENCH_N", "0") or 0)
_OUT = os.environ.get("BENCH_OUT", "")
_SHARED = os.environ.get("BENCH_SHARED") == "1"
_count = itertools.count(1)
_first: list[float] = []
_latencies: list[float] = []
_redis = None


def _shared_client():  # type: ignore[no-untyped-def]
    global _redis
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _redis


def begin(ts: float) -> None:
    """Called first thing in a task body. ``ts``: enqueue time (>0), 0, or a ping (<0)."""
    now = time.time()
    if ts < 0:
        with open(_OUT + ".ready", "w") as f:
            f.write(str(os.getpid()))
        return
    if _SHARED:
        client = _shared_client()
        client.setnx("bench:first", repr(now))
        if ts > 0:
            client.rpush("bench:lat", repr(now - ts))
        return
    if not _first:
        _first.append(now)
    if ts > 0:
        _latencies.append(now - ts)


def end(ts: float) -> None:
    """Called last thing in a task body."""
    if ts < 0:
        return
    if _SHARED:
        client = _shared_client()
        if client.incr("bench:count") == _N:
            first = float(client.get("bench:first"))
            lat = [float(x) for x in client.lrange("bench:lat", 0, -1)]
            _write(first, lat)
        return
    if next(_count) == _N:
        _write(_first[0], _latencies)


def _write(first: float, latencies: list[float]) -> None:
    data = {"first": first, "last": time.time(), "latencies": latencies}
    tmp = _OUT + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, _OUT)
