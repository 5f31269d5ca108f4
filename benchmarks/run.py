"""Side-by-side benchmarks: fluxqueue (Redis, SQLite, memory) against the peer libraries.

    .venv/bin/python benchmarks/run.py            # full run, about 20 minutes
    .venv/bin/python benchmarks/run.py --quick    # a couple of minutes, smaller counts
    .venv/bin/python benchmarks/run.py --libs fluxqueue-redis,dramatiq --repeat 5

Every library talks to one private ``redis-server`` that this script starts on a free port
(never the shared 6379) and stops at the end, even on failure or Ctrl-C. Each peer runs in
its own virtualenv under ``benchmarks/.venv-peers/`` (created on first use from
``requirements-peers.txt``), with one worker process and concurrency 16. Every workload is
repeated (the rounds interleaved across libraries) and reported as the median. Results: a
markdown table on stdout and in ``benchmarks/results.md``, ``benchmarks/results.json``,
and ``docs/benchmarks.png``. Beside the libraries runs ``floor`` (``libs/floor_lib.py``): a
bare socket client, the least any Python client can do against this Redis, in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from report import render_table, write_outputs  # noqa: E402

PEERS_DIR = HERE / ".venv-peers"
CONCURRENCY = 16

#: name -> (adapter module, virtualenv name, URL kind)
LIBS: dict[str, tuple[str, str, str]] = {
    "fluxqueue-redis": ("fluxqueue_lib", "fluxqueue", "redis"),
    "fluxqueue-sqlite": ("fluxqueue_lib", "fluxqueue", "sqlite"),
    "fluxqueue-memory": ("fluxqueue_lib", "fluxqueue", "memory"),
    "celery": ("celery_lib", "celery", "redis"),
    "dramatiq": ("dramatiq_lib", "dramatiq", "redis"),
    "rq": ("rq_lib", "rq", "redis"),
    "huey": ("huey_lib", "huey", "redis"),
    "arq": ("arq_lib", "arq", "redis"),
    "taskiq": ("taskiq_lib", "taskiq", "redis"),
    "streaq": ("streaq_lib", "streaq", "redis"),
    "saq": ("saq_lib", "saq", "redis"),
    # Not a library: a bare socket client, the least any Python client can do here.
    "floor": ("floor_lib", "fluxqueue", "redis"),
}

WORKLOADS = [
    "enqueue_one",
    "enqueue_bulk",
    "drain_noop",
    "drain_async_noop",
    "drain_async_sleep",
    "drain_sync_sleep",
    "latency_p50",
    "latency_p99",
    "idle_rss",
]

#: Libraries that drain at under ~250 tasks/s here (RQ forks a process per job; arq polls
#: every 0.5 s) get smaller drain counts, or one full run would take most of an hour. The
#: rate is per task, so this neither favours nor penalises them; results.json records it.
CAPS: dict[str, dict[str, int]] = {
    "rq": {"noop": 1000, "sleep": 300},
    "arq": {"noop": 2000, "sleep": 300},
}

_children: list[subprocess.Popen[bytes]] = []


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- processes ---------------------------------------------------------------------------


def _kill_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # children a worker left behind, if any
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    if proc in _children:
        _children.remove(proc)


def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    out = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=HERE / "libs")  # fmt: skip
    out.close()
    _children.append(proc)
    return proc


def cleanup() -> None:
    for proc in list(_children):
        _kill_group(proc, grace=2.0)


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server not found: apt-get install -y redis-server")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
        self.proc = _spawn(argv, dict(os.environ), workdir / "redis.log")
        import redis

        self.client = redis.Redis(port=self.port)
        for _ in range(200):
            with contextlib.suppress(redis.ConnectionError):
                self.client.ping()
                return
            time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def flush(self) -> None:
        self.client.flushall()


# -- virtualenvs -------------------------------------------------------------------------


def peer_requirements() -> dict[str, list[str]]:
    found = {}
    for line in (HERE / "requirements-peers.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if ":" in line:
            name, reqs = line.split(":", 1)
            found[name.strip()] = reqs.split()
    return found


def ensure_venv(name: str) -> Path | None:
    """The peer's interpreter, creating its virtualenv on first use; None if that fails."""
    python = PEERS_DIR / name / "bin" / "python"
    if python.exists():
        return python
    reqs = peer_requirements().get(name)
    if not reqs:
        return None
    log(f"setting up {PEERS_DIR / name} ({' '.join(reqs)})")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_DIR / name)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *reqs], check=True)
    except subprocess.CalledProcessError as exc:
        log(f"could not install {name}: {exc}")
        shutil.rmtree(PEERS_DIR / name, ignore_errors=True)
        return None
    return python


def fluxqueue_venv() -> Path | None:
    """fluxqueue installed from this checkout as users install it (a built wheel, not the
    editable development install), in a virtualenv of its own like every peer; reinstalled
    on every run so that what is measured is the code in the tree."""
    python = ensure_venv("fluxqueue")
    if python is None:
        return None
    log("installing fluxqueue from this checkout into its benchmark virtualenv")
    pip = [str(python), "-m", "pip", "install", "-q"]
    try:
        subprocess.run([*pip, str(ROOT)], check=True)  # its dependencies, once
        subprocess.run([*pip, "--force-reinstall", "--no-deps", str(ROOT)], check=True)
    except subprocess.CalledProcessError as exc:
        log(f"could not install fluxqueue: {exc}")
        return None
    return python


def versions(python: Path, module: str) -> dict[str, str]:
    if not module:
        return {}
    code = (
        "import importlib.metadata as m, json, sys;"
        f"names={module!r}.split(',');"
        "print(json.dumps({n: m.version(n) for n in names}))"
    )
    try:
        out = subprocess.run([str(python), "-c", code], capture_output=True, check=True)
        return dict(json.loads(out.stdout))
    except (subprocess.CalledProcessError, ValueError):
        return {}


DISTS = {
    "fluxqueue-redis": "fluxqueue,redis,hiredis",
    "fluxqueue-sqlite": "fluxqueue",
    "fluxqueue-memory": "fluxqueue",
    "celery": "celery,kombu,redis",
    "dramatiq": "dramatiq,redis",
    "rq": "rq,redis",
    "huey": "huey,redis",
    "arq": "arq,redis",
    "taskiq": "taskiq,taskiq-redis,redis",
    "streaq": "streaq",
    "saq": "saq,redis",
    "floor": "",
}


# -- one library -------------------------------------------------------------------------


class Runner:
    def __init__(
        self, name: str, python: Path, redis: RedisServer, workdir: Path, n: dict[str, int]
    ):
        self.name = name
        self.module, _, kind = LIBS[name]
        self.python = python
        self.redis = redis
        self.workdir = workdir
        self.n = n
        self.in_process = kind == "memory"
        self.kind = kind
        self.case = 0

    def url(self) -> str:
        if self.kind == "redis":
            return self.redis.url
        if self.kind == "sqlite":
            return f"sqlite:///{self.workdir}/{self.name}-{self.case}.db"
        return "memory://"

    def env(self, out: Path, n: int = 0) -> dict[str, str]:
        env = dict(os.environ)
        env.update(BENCH_URL=self.url(), BENCH_REDIS_URL=self.redis.url, BENCH_OUT=str(out),
                   BENCH_N=str(n), PYTHONPATH=str(HERE / "libs"), PYTHONUNBUFFERED="1")  # fmt: skip
        env.pop("FLUXQUEUE_BROKER_URL", None)
        return env

    def fresh(self) -> Path:
        self.case += 1
        self.redis.flush()
        return self.workdir / f"{self.name}-{self.case}.out"

    def step(self, out: Path, n: int, op: str, *args: Any, timeout: float = 600) -> dict[str, Any]:
        argv = [str(self.python), str(HERE / "bench.py"), self.module, op, *map(str, args)]
        try:
            done = subprocess.run(argv, env=self.env(out, n), capture_output=True,
                                  timeout=timeout, cwd=HERE / "libs")  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"error": f"{op} timed out after {timeout:g}s"}
        lines = done.stdout.decode().strip().splitlines()
        if done.returncode != 0 or not lines:
            tail = done.stderr.decode().strip().splitlines()[-3:]
            return {"error": f"{op} failed: {' | '.join(tail)}"}
        return dict(json.loads(lines[-1]))

    def worker(self, out: Path, n: int) -> subprocess.Popen[bytes]:
        code = (
            "import sys; sys.path.insert(0, '.'); import "
            f"{self.module} as m; print(' '.join(m.worker_argv({str(self.python)!r}, "
            f"{self.url()!r}, {CONCURRENCY})))"
        )
        argv = subprocess.run([str(self.python), "-c", code], env=self.env(out, n),
                              capture_output=True, check=True, cwd=HERE / "libs")  # fmt: skip
        return _spawn(
            argv.stdout.decode().split(), self.env(out, n), self.workdir / f"{self.name}.log"
        )

    def wait_file(self, path: Path, proc: subprocess.Popen[bytes] | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if proc is not None and proc.poll() is not None:
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # -- workloads -----------------------------------------------------------------------

    def enqueue(self, op: str) -> float | str:
        count = self.n["enqueue"]
        res = self.step(self.fresh(), 0, op, count)
        if "seconds" not in res:
            return str(res.get("unsupported") or res.get("error"))
        return count / res["seconds"]

    def drain(self, kind: str, count: int) -> float | str:
        out = self.fresh()
        if self.in_process:
            res = self.step(out, count, "drain_in_process", kind, count, CONCURRENCY)
            if "seconds" not in res:
                return str(res.get("unsupported") or res.get("error"))
            return _rate(out, count)
        res = self.step(out, count, "fill", kind, count)
        if "seconds" not in res:
            return str(res.get("unsupported") or res.get("error"))
        proc = self.worker(out, count)
        try:
            if not self.wait_file(out, proc, timeout=max(120.0, count / 20)):
                return "worker exited" if proc.poll() is not None else "timed out"
        finally:
            _kill_group(proc)
        return _rate(out, count)

    def latency(self) -> tuple[float | str, float | str, float | str]:
        """p50 and p99 enqueue-to-start latency in ms, and the idle worker's RSS in MB."""
        count, spacing = self.n["latency"], 0.01
        out = self.fresh()
        if self.in_process:
            res = self.step(out, count, "latency_in_process", count, spacing, CONCURRENCY)
            if "seconds" not in res:
                err = str(res.get("unsupported") or res.get("error"))
                return err, err, err
            return (*_percentiles(out), "in-process")
        proc = self.worker(out, count)
        try:
            res = self.step(out, count, "wait_ready", 120)
            if "error" in res:
                return res["error"], res["error"], res["error"]
            res = self.step(out, count, "send_latency", count, spacing)
            if "seconds" not in res:
                err = str(res.get("unsupported") or res.get("error"))
                return err, err, err
            if not self.wait_file(out, proc, timeout=60):
                return "timed out", "timed out", "timed out"
            time.sleep(1.0)  # idle now
            rss = _tree_rss_mb(proc.pid)
        finally:
            _kill_group(proc)
        return (*_percentiles(out), rss)


def _rate(out: Path, count: int) -> float | str:
    try:
        data = json.loads(out.read_text())
    except (OSError, ValueError):
        return "no result"
    return count / (data["last"] - data["first"])


def _percentiles(out: Path) -> tuple[float | str, float | str]:
    try:
        lat = sorted(json.loads(out.read_text())["latencies"])
    except (OSError, ValueError, KeyError):
        return "no result", "no result"
    if not lat:
        return "no result", "no result"

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, round(p * (len(lat) - 1)))] * 1000

    return pct(0.50), pct(0.99)


def _tree_rss_mb(pgid: int) -> float:
    """Resident memory of every process in the worker's process group, in MB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total / 1024


def _median(values: list[float | str]) -> float | str:
    numbers = [v for v in values if isinstance(v, (int, float))]
    if numbers:
        return statistics.median(numbers)
    return values[0] if values else "not run"


def run_round(runner: Runner, samples: dict[str, list[float | str]], label: str) -> None:
    """One round of every workload for one library, appended to ``samples``."""
    log(f"  {runner.name}: round {label}")
    samples["enqueue_one"].append(runner.enqueue("enqueue_one"))
    samples["enqueue_bulk"].append(runner.enqueue("enqueue_bulk"))
    samples["drain_noop"].append(runner.drain("noop", runner.n["noop"]))
    samples["drain_async_noop"].append(runner.drain("anoop", runner.n["noop"]))
    samples["drain_async_sleep"].append(runner.drain("asleep", runner.n["sleep"]))
    samples["drain_sync_sleep"].append(runner.drain("ssleep", runner.n["sleep"]))
    p50, p99, rss = runner.latency()
    samples["latency_p50"].append(p50)
    samples["latency_p99"].append(p99)
    samples["idle_rss"].append(rss)
    log("    " + ", ".join(f"{k}={_short(v[-1])}" for k, v in samples.items()))


def summary(samples: dict[str, list[float | str]]) -> dict[str, Any]:
    return {"median": {k: _median(v) for k, v in samples.items()}, "samples": samples}


def _short(value: float | str) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)[:60]


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True).stdout
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_server": redis_version.decode().split()[2].removeprefix("v="),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one round")
    parser.add_argument(
        "--libs", default=",".join(LIBS), help="comma-separated, of: " + ", ".join(LIBS)
    )
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 3; 1 quick)")
    parser.add_argument("--out", default=str(HERE / "results"), help="results.json/.md prefix")
    parser.add_argument("--chart", default=str(ROOT / "docs" / "benchmarks.png"))
    parser.add_argument("--no-chart", action="store_true")
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)
    n = (
        {"enqueue": 2000, "noop": 2000, "sleep": 500, "latency": 100}
        if args.quick
        else {"enqueue": 10_000, "noop": 10_000, "sleep": 2000, "latency": 300}
    )
    names = [x.strip() for x in args.libs.split(",") if x.strip()]
    unknown = [x for x in names if x not in LIBS]
    if unknown:
        parser.error(f"unknown libraries {unknown}; known: {', '.join(LIBS)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="fluxqueue-bench-"))
    results: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "benchmarks/run.py", *sys.argv[1:]]),
        "machine": machine(),
        "counts": n,
        "repeat": repeat,
        "concurrency": CONCURRENCY,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "libraries": {},
    }
    try:
        redis = RedisServer(workdir)
        own = fluxqueue_venv() if any(LIBS[name][1] == "fluxqueue" for name in names) else None
        runners: list[Runner] = []
        for name in names:
            _module, venv, _ = LIBS[name]
            python = own if venv == "fluxqueue" else ensure_venv(venv)
            if python is None:
                results["libraries"][name] = {"error": "could not be installed here"}
                continue
            log(f"{name}: {python}")
            counts = {k: min(v, CAPS.get(name, {}).get(k, v)) for k, v in n.items()}
            runners.append(Runner(name, python, redis, workdir, counts))
        # Rounds are interleaved (round 1 of every library, then round 2...): this machine
        # drifts between quiet and busy spells, and a library whose rounds all fell in one
        # spell would be compared with another measured in a different one.
        samples = {r.name: {w: [] for w in WORKLOADS} for r in runners}
        for i in range(repeat):
            for runner in runners:
                run_round(runner, samples[runner.name], f"{i + 1}/{repeat}")
        for runner in runners:
            entry = summary(samples[runner.name])
            entry["versions"] = versions(runner.python, DISTS[runner.name])
            entry["counts"] = runner.n
            results["libraries"][runner.name] = entry
    finally:
        cleanup()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
    chart_python = None if args.no_chart else ensure_venv("chart")
    write_outputs(
        results, Path(args.out), None if chart_python is None else (chart_python, Path(args.chart))
    )
    print(render_table(results))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cleanup()
