"""Worker start to first task: how long a fresh ``fluxqueue start`` takes to run a task
that is already waiting (imports, plugin loading, the broker's greeting, the first fetch).

    python benchmarks/startup.py [--python PATH] [--rounds N]

``--python`` is the interpreter whose fluxqueue is measured (default: this one); the
worker is the benchmark adapter's (``libs/fluxqueue_lib.py``) against a private
``redis-server`` on a free port. Each round enqueues one readiness ping, starts the worker
and stops the clock when the ping's file appears. Prints one JSON line: every round in
seconds, the median, and the spread (min, max). It matters for reloads, recycling and
autoscaling; it is what ``docs/benchmarks.md`` quotes as "start to first task".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fluxqueue-startup-"))
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: apt-get install -y redis-server")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    env = dict(os.environ, BENCH_URL=url, BENCH_REDIS_URL=url, PYTHONPATH=str(HERE / "libs"))
    env.pop("FLUXQUEUE_BROKER_URL", None)
    rounds: list[float] = []
    try:
        time.sleep(0.3)
        for i in range(args.rounds):
            out = workdir / f"round-{i}.out"
            env["BENCH_OUT"] = str(out)
            ping = [args.python, str(HERE / "bench.py"), "fluxqueue_lib", "ping"]
            subprocess.run(ping, env=env, check=True, cwd=HERE / "libs", capture_output=True)
            argv = [args.python, "-m", "fluxqueue.cli", "start", "-t", "fluxqueue_lib",
                    "-b", url, "-c", "16", "--log-level", "warning"]  # fmt: skip
            start = time.perf_counter()
            worker = subprocess.Popen(
                argv, env=env, cwd=HERE / "libs", start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                if not _wait_for(Path(str(out) + ".ready"), worker, 60):
                    raise SystemExit(f"round {i}: the worker never ran the ping")
                rounds.append(time.perf_counter() - start)
            finally:
                _stop(worker)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({
        "python": args.python, "rounds": [round(r, 4) for r in rounds],
        "median": round(statistics.median(rounds), 4),
        "min": round(min(rounds), 4), "max": round(max(rounds), 4),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
