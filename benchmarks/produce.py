"""The producer alone, two checkouts side by side: an A/B probe for enqueue changes.

    .venv/bin/python benchmarks/produce.py --a /tmp/ab-main --b . --rounds 8
    .venv/bin/python benchmarks/produce.py --a /tmp/c0 --b /tmp/c1 --b /tmp/c2 --rounds 8

Starts its own ``redis-server`` (a free port, never 6379, no persistence) and then, each
round, one child process per checkout, in turns (A B, then B A, ...; with several ``--b``,
the order rotates), flushing Redis between them. Each child imports fluxqueue from its
checkout (``PYTHONPATH``) with this interpreter's redis-py and hiredis, and times what
``benchmarks/run.py`` times for its two producer rows: ``task.enqueue(0.0)`` one at a
time (``--one`` calls) and ``fq.enqueue_many`` of ``--bulk`` messages built in the timed
part, with the process's CPU time per message beside each, and Redis's CPU time per
single enqueue (``INFO cpu``). With ``--huey PYTHON`` (an interpreter with Huey and
redis-py: run.py's ``benchmarks/.venv-peers/huey/bin/python``), Huey's single enqueue
takes a turn as well. Prints one line per child and the medians, ratios (each against A)
taken round by round, and the load average before and after: the machine is shared. Not
part of the side-by-side table (round 9 in docs/benchmarks.md).

    .venv/bin/python benchmarks/produce.py --profile --one 20000

runs the single enqueues of this checkout under cProfile instead, and prints where the
time went.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def child(url: str, one: int, bulk: int, lib: str = "fluxqueue") -> None:
    import redis

    server = redis.Redis.from_url(url)
    if lib == "huey":  # Huey's single enqueue, as its adapter in libs/ does it
        from huey import RedisHuey

        huey = RedisHuey("bench", url=url)
        send = huey.task()(_nothing)
        where = "huey"
    else:
        import fluxqueue
        from fluxqueue import FluxQueue

        fq = FluxQueue(url)
        task = fq.task(name="noop")(_nothing)
        send = task.enqueue
        where = str(Path(fluxqueue.__file__).parent.parent)
    for _ in range(200):  # warm up: connection, script cache
        send(0.0)
    server_cpu = _server_cpu(server)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(one):
        send(0.0)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_cpu = _server_cpu(server) - server_cpu
    row: dict[str, Any] = {"one": one / wall, "one_cpu_us": cpu / one * 1e6,
                           "one_server_cpu_us": server_cpu / one * 1e6}  # fmt: skip
    if lib != "huey":  # Huey has no bulk enqueue
        bulk_s, bulk_cpu = time.perf_counter(), time.process_time()
        fq.enqueue_many([task.message(0.0) for _ in range(bulk)])
        bulk_s, bulk_cpu = time.perf_counter() - bulk_s, time.process_time() - bulk_cpu
        row.update(bulk=bulk / bulk_s, bulk_cpu_us=bulk_cpu / bulk * 1e6)
    print(json.dumps({**row, "from": where}))


def _nothing(ts: float) -> None: ...


def _server_cpu(server: Any) -> float:
    """The Redis server's CPU seconds so far (user and system)."""
    info = server.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--a", help="checkout A (the baseline)")
    parser.add_argument("--b", action="append", help="checkout B (repeatable)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--one", type=int, default=10000, help="single enqueues per child")
    parser.add_argument("--bulk", type=int, default=10000, help="messages in the bulk enqueue")
    parser.add_argument("--huey", metavar="PYTHON", help="also Huey, with this interpreter")
    parser.add_argument("--profile", action="store_true", help="cProfile this checkout")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--lib", default="fluxqueue", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.one, args.bulk, args.lib)
        return 0

    from run import RedisServer, cleanup

    if args.profile:
        import cProfile
        import pstats

        with tempfile.TemporaryDirectory() as workdir:
            try:
                redis = RedisServer(Path(workdir))
                profile = cProfile.Profile()
                profile.runcall(child, redis.url, args.one, 1)
                pstats.Stats(profile).sort_stats("tottime").print_stats(25)
            finally:
                cleanup()
        return 0

    if not args.a or not args.b:
        parser.error("--a and --b are needed (or --profile)")
    sides = {"A": Path(args.a).resolve()}
    for i, b in enumerate(args.b):
        sides["B" if len(args.b) == 1 else f"B{i + 1}"] = Path(b).resolve()
    if args.huey:
        sides["huey"] = Path(args.huey)
    names = list(sides)
    found: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    print(f"load {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        try:
            redis = RedisServer(Path(workdir))
            for i in range(args.rounds):
                turn = names[i % len(names) :] + names[: i % len(names)]
                for side in turn if i % 2 == 0 else turn[::-1]:
                    redis.flush()
                    env = {**os.environ, "PYTHONPATH": str(sides[side])}
                    python, lib = sys.executable, "fluxqueue"
                    if side == "huey":
                        env.pop("PYTHONPATH")
                        python, lib = args.huey, "huey"
                    argv = [python, __file__, "--child", redis.url, "--lib", lib,
                            "--one", str(args.one), "--bulk", str(args.bulk)]  # fmt: skip
                    done = subprocess.run(argv, env=env, capture_output=True, check=True)
                    row = json.loads(done.stdout.decode().strip().splitlines()[-1])
                    if side != "huey" and Path(row.pop("from")) != sides[side]:
                        raise SystemExit(f"{side} did not import fluxqueue from {sides[side]}")
                    found[side].append(row)
                    print(f"round {i + 1} {side}: {json.dumps(row)}", flush=True)
        finally:
            cleanup()
    print(f"load {os.getloadavg()}")
    for key in ("one", "one_cpu_us", "one_server_cpu_us", "bulk", "bulk_cpu_us"):
        a = [row[key] for row in found["A"]]
        line = f"{key}: A {statistics.median(a):,.1f} ({min(a):,.1f}-{max(a):,.1f})"
        for name in names[1:]:
            b = [row[key] for row in found[name] if key in row]
            if not b:
                continue
            ratios = [y / x for x, y in zip(a, b, strict=True)]
            line += (f"  {name} {statistics.median(b):,.1f} ({min(b):,.1f}-{max(b):,.1f}) "
                     f"{name}/A {statistics.median(ratios):.2f}x "
                     f"({min(ratios):.2f}-{max(ratios):.2f})")  # fmt: skip
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
