"""Reliability soak: real workers, real faults, and what they cost.

    python benchmarks/reliability.py --tasks 10000 --kills 10 --outage 30 --out report.md

For each backend (SQLite and Redis, each on private files / a private redis-server), it
runs ``fluxqueue start`` worker processes on a tasks module it writes to a temp dir and
measures:

* **SIGKILL**: workers are killed with SIGKILL at even points of the run (and replaced, as
  a process manager would); every task must complete. Reported: tasks lost (must be 0),
  tasks whose body started twice, tasks that completed twice, and per kill the time until
  the killed worker's unfinished tasks started again elsewhere (about one visibility
  timeout: that is when their leases expire).
* **Redis restart** (AOF on, as in production): redis-server is stopped with SIGTERM and
  started again mid-run; the workers reconnect by themselves.
* **Redis outage**: redis-server is gone for ``--outage`` seconds; a producer keeps trying
  and must get ``BrokerConnectionError`` promptly, the workers wait and resume.
* **SIGTERM during a long task**: the worker exits 0, the task finished or went back.

The tests in ``tests/faults/`` run the same scenarios, small, in CI. Each task appends
``S``/``E`` lines (start/end, pid, time) to a per-process file with O_APPEND, which is how
double runs and recovery are counted without trusting the queue under test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fluxqueue import BrokerConnectionError, FluxQueue  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

TASKS = textwrap.dedent(
    """
    import os
    import time

    from fluxqueue import FluxQueue

    fq = FluxQueue()
    _fd = os.open(
        os.path.join(os.environ["RELIABILITY_DIR"], f"events-{os.getpid()}.log"),
        os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    )


    def _event(kind, i):
        os.write(_fd, f"{kind} {i} {os.getpid()} {time.time():.6f}\\n".encode())


    @fq.task(name="work", max_retries=0)
    def work(i, seconds):
        _event("S", i)
        time.sleep(seconds)
        _event("E", i)
        return i
    """
)


@dataclass
class Kill:
    at: float
    pid: int
    in_flight: int = 0
    recovery: float | None = None  # seconds until its unfinished tasks started elsewhere


@dataclass
class Outcome:
    """What one scenario on one backend measured."""

    backend: str
    scenario: str
    sent: int = 0
    completed: int = 0
    lost: int = 0
    started_twice: int = 0
    completed_twice: int = 0
    duration: float = 0.0
    visibility_timeout: float = 0.0
    kills: list[Kill] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def recoveries(self) -> list[float]:
        return [k.recovery for k in self.kills if k.recovery is not None]


class Cluster:
    """A broker URL, a work dir with the tasks module, and the worker processes on it."""

    def __init__(self, url: str, workdir: Path, *, concurrency: int = 8) -> None:
        self.url = url
        self.dir = workdir
        self.concurrency = concurrency
        (workdir / "soak_tasks.py").write_text(TASKS)
        self.workers: list[subprocess.Popen[bytes]] = []
        self._logs = 0
        self._next = 0  # task indices are unique across enqueues: they identify runs
        self.app = FluxQueue(url)

    def start_worker(self, *extra: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXQUEUE_")}
        env.update(RELIABILITY_DIR=str(self.dir), FLUXQUEUE_BROKER_URL=self.url)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        self._logs += 1
        with open(self.dir / f"worker-{self._logs}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "fluxqueue.cli", "start", "-t", "soak_tasks.py",
                 "-c", str(self.concurrency), *extra],
                cwd=self.dir, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.workers.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.dir.glob("worker-*")))

    def enqueue(self, count: int, seconds: float) -> list[str]:
        ids: list[str] = []
        work = self.app.named("work")
        first, end = self._next, self._next + count
        for start in range(first, end, 1000):
            batch = [work.message(i, seconds) for i in range(start, min(end, start + 1000))]
            ids += [h.id for h in self.app.enqueue_many(batch)]
            self._next = start + len(batch)
        return ids

    def events(self) -> dict[str, list[tuple[int, int, float]]]:
        """'S'/'E' -> [(task index, pid, time)]."""
        found: dict[str, list[tuple[int, int, float]]] = {"S": [], "E": []}
        for path in self.dir.glob("events-*.log"):
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 4:  # a line cut by SIGKILL mid-write has fewer fields
                    found[parts[0]].append((int(parts[1]), int(parts[2]), float(parts[3])))
        return found

    def finished(self) -> int:
        return len({i for i, _, _ in self.events()["E"]})

    def wait_finished(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.finished() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.finished()}/{count} tasks finished in {timeout}s")
            time.sleep(0.05)

    def wait_drained(self, timeout: float) -> None:
        """Until nothing is ready, scheduled or running (the last acks are in)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(BrokerConnectionError):
                queue = self.app.run(self.app.admin.stats(["default"])).queues[0]
                if queue.total_ready + queue.scheduled + queue.running == 0:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"queue not drained in {timeout}s")
            time.sleep(0.1)

    def tally(self, outcome: Outcome, ids: list[str]) -> Outcome:
        statuses = self.app.run(_statuses(self.app, ids))
        outcome.sent = len(ids)
        outcome.completed = sum(1 for s in statuses if s == "SUCCESS")
        outcome.lost = outcome.sent - outcome.completed
        events = self.events()
        starts: dict[int, int] = defaultdict(int)
        ends: dict[int, int] = defaultdict(int)
        for i, _, _ in events["S"]:
            starts[i] += 1
        for i, _, _ in events["E"]:
            ends[i] += 1
        outcome.started_twice = sum(1 for n in starts.values() if n > 1)
        outcome.completed_twice = sum(1 for n in ends.values() if n > 1)
        for kill in outcome.kills:
            _recovery(kill, events)
        outcome.visibility_timeout = self.app.broker.visibility_timeout
        return outcome

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(Exception):
            self.app.close()


async def _statuses(app: FluxQueue, ids: list[str]) -> list[str | None]:
    found = []
    for task_id in ids:
        state = await app.broker.get_state(task_id)
        found.append(None if state is None else state.status)
    return found


def _recovery(kill: Kill, events: dict[str, list[tuple[int, int, float]]]) -> None:
    """In-flight = started by the killed pid, never ended by it; recovery = when the last
    of those started again in another process."""
    ended = {i for i, pid, _ in events["E"] if pid == kill.pid}
    unfinished = {i for i, pid, _ in events["S"] if pid == kill.pid and i not in ended}
    kill.in_flight = len(unfinished)
    restarts: dict[int, float] = {}
    for i, pid, at in events["S"]:
        if i in unfinished and pid != kill.pid and at >= kill.at:
            restarts[i] = min(at, restarts.get(i, at))
    if unfinished and len(restarts) == len(unfinished):
        kill.recovery = max(restarts.values()) - kill.at


# -- scenarios ----------------------------------------------------------------------


def sigkill_run(
    url: str, workdir: Path, backend: str, *, tasks: int, kills: int, seconds: float = 0.01,
    workers: int = 2, concurrency: int = 8, timeout: float = 600,
) -> Outcome:  # fmt: skip
    """``tasks`` tasks on ``workers`` workers; ``kills`` SIGKILLs spread over the run."""
    cluster = Cluster(url, workdir, concurrency=concurrency)
    outcome = Outcome(backend, "sigkill")
    try:
        live = [cluster.start_worker() for _ in range(workers)]
        began = time.monotonic()
        ids = cluster.enqueue(tasks, seconds)
        for k in range(1, kills + 1):
            cluster.wait_finished(tasks * k // (kills + 1), timeout)
            victim = live.pop(0)
            victim.kill()  # SIGKILL
            outcome.kills.append(Kill(time.time(), victim.pid))
            victim.wait()
            live.append(cluster.start_worker())  # what systemd or the supervisor would do
        cluster.wait_finished(tasks, timeout)
        cluster.wait_drained(timeout)
        outcome.duration = time.monotonic() - began
        return cluster.tally(outcome, ids)
    finally:
        cluster.stop()


def redis_restart_run(
    server: RedisServer, workdir: Path, *, tasks: int, restarts: int = 1, seconds: float = 0.01,
    timeout: float = 600,
) -> Outcome:  # fmt: skip
    """Stop redis-server with SIGTERM and start it again, ``restarts`` times, mid-run."""
    url = server.url + "?visibility_timeout=5"
    cluster = Cluster(url, workdir)
    outcome = Outcome("redis", "restart")
    try:
        for _ in range(2):
            cluster.start_worker()
        began = time.monotonic()
        ids = cluster.enqueue(tasks, seconds)
        resumed = []
        for r in range(1, restarts + 1):
            cluster.wait_finished(tasks * r // (restarts + 1), timeout)
            down = time.monotonic()
            server.restart()
            back = time.monotonic()
            before = cluster.finished()
            while cluster.finished() == before:
                if time.monotonic() - back > timeout:
                    raise TimeoutError("the workers did not resume after the restart")
                time.sleep(0.01)
            resumed.append((back - down, time.monotonic() - back))
        cluster.wait_finished(tasks, timeout)
        cluster.wait_drained(timeout)
        outcome.duration = time.monotonic() - began
        outcome.notes["restarts"] = [
            {"down_s": round(d, 3), "resumed_after_s": round(r, 3)} for d, r in resumed
        ]
        outcome.notes["worker_exits"] = sum(1 for p in cluster.workers if p.poll() is not None)
        return cluster.tally(outcome, ids)
    finally:
        cluster.stop()


def redis_outage_run(
    server: RedisServer, workdir: Path, *, tasks: int, outage: float, seconds: float = 0.01,
    producer_timeout: float = 2.0, freeze: bool = False, timeout: float = 600,
) -> Outcome:  # fmt: skip
    """Take redis-server away for ``outage`` seconds mid-run while a producer keeps trying.

    Away means stopped (connections are refused at once) or, with ``freeze``, SIGSTOPped
    (a hung server or a network partition: connections open but nothing answers). The
    producer's URL sets ``socket_timeout``/``socket_connect_timeout`` to
    ``producer_timeout``: the configurable bound on how long a call can hang.
    """
    url = server.url + "?visibility_timeout=5"
    cluster = Cluster(url, workdir)
    outcome = Outcome("redis", "freeze" if freeze else "outage")
    bound = f"socket_timeout={producer_timeout:g}&socket_connect_timeout={producer_timeout:g}"
    producer = FluxQueue(f"{server.url}?{bound}")
    attempts: list[tuple[float, str]] = []
    try:
        for _ in range(2):
            cluster.start_worker()
        began = time.monotonic()
        ids = cluster.enqueue(tasks, seconds)
        cluster.wait_finished(tasks // 3, timeout)
        assert server.process is not None
        if freeze:
            server.process.send_signal(signal.SIGSTOP)
        else:
            server.stop()
        gone = time.monotonic()
        stop_trying = threading.Event()

        def produce() -> None:
            while not stop_trying.is_set():
                t0 = time.monotonic()
                try:
                    producer.enqueue("work", -1, 0.0)
                    attempts.append((time.monotonic() - t0, "ok"))
                except Exception as exc:
                    attempts.append((time.monotonic() - t0, type(exc).__name__))
                stop_trying.wait(0.5)

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        time.sleep(max(0.0, outage - (time.monotonic() - gone)))
        stop_trying.set()
        thread.join(producer_timeout * 3 + 5)
        if freeze:
            server.process.send_signal(signal.SIGCONT)
        else:
            server.start()
        back = time.monotonic()
        before = cluster.finished()
        while cluster.finished() == before:
            if time.monotonic() - back > timeout:
                raise TimeoutError("the workers did not resume after the outage")
            time.sleep(0.01)
        resumed_after = time.monotonic() - back
        after = producer.enqueue("work", -2, 0.0)  # producers work again at once
        cluster.wait_finished(tasks, timeout)
        cluster.wait_drained(timeout)
        outcome.duration = time.monotonic() - began
        errors = [kind for _, kind in attempts]
        outcome.notes.update(
            outage_s=round(back - gone, 2),
            producer_attempts=len(attempts),
            producer_errors=sorted(set(errors)),
            producer_slowest_error_s=round(max((d for d, _ in attempts), default=0.0), 3),
            workers_resumed_after_s=round(resumed_after, 3),
            worker_exits=sum(1 for p in cluster.workers if p.poll() is not None),
            enqueue_after_outage=after.id,
        )
        return cluster.tally(outcome, ids)
    finally:
        with contextlib.suppress(Exception):
            producer.close()
        cluster.stop()


def sigterm_run(url: str, workdir: Path, backend: str, *, task_seconds: float,
                shutdown_timeout: float) -> Outcome:  # fmt: skip
    """SIGTERM while one long task runs: exit status, and what became of the task."""
    cluster = Cluster(url, workdir, concurrency=1)
    outcome = Outcome(backend, "sigterm")
    try:
        worker = cluster.start_worker("--shutdown-timeout", str(shutdown_timeout))
        ids = cluster.enqueue(1, task_seconds)
        deadline = time.monotonic() + 30
        while not cluster.events()["S"]:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise TimeoutError(f"the task did not start:\n{cluster.logs()}")
            time.sleep(0.02)
        t0 = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(shutdown_timeout + task_seconds + 30)
        outcome.notes.update(exit_code=code, exit_after_s=round(time.monotonic() - t0, 2))
        state = cluster.app.run(cluster.app.broker.get_state(ids[0]))
        outcome.notes["status_after_exit"] = state.status if state else None
        cluster.start_worker("--burst")  # whatever went back is run by the next worker
        cluster.workers[-1].wait(task_seconds + 60)
        outcome.duration = time.monotonic() - t0
        return cluster.tally(outcome, ids)
    finally:
        cluster.stop()


# -- the report ---------------------------------------------------------------------


def _fmt(values: list[float]) -> str:
    if not values:
        return "n/a"
    median = sorted(values)[len(values) // 2]
    return f"min {min(values):.2f} s, median {median:.2f} s, max {max(values):.2f} s"


def report(outcomes: list[Outcome], command: str) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        "| backend | scenario | sent | completed | lost | started twice | completed twice | "
        "duration |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.backend} | {o.scenario} | {o.sent:,} | {o.completed:,} | {o.lost} | "
            f"{o.started_twice} | {o.completed_twice} | {o.duration:.1f} s |"
        )
    lines.append("")
    for o in outcomes:
        if o.kills:
            in_flight = sum(k.in_flight for k in o.kills)
            lines.append(
                f"- {o.backend}, SIGKILL: {len(o.kills)} kills, {in_flight} tasks in flight in "
                f"the killed workers; recovery (kill to the last of them restarting "
                f"elsewhere) {_fmt(o.recoveries)} with visibility_timeout "
                f"{o.visibility_timeout:g} s"
            )
        if o.notes:
            notes = ", ".join(f"{k}={v}" for k, v in o.notes.items() if k != "enqueue_after_outage")
            lines.append(f"- {o.backend}, {o.scenario}: {notes}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _tempdir(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"fq-reliability-{name}-") as d:
        yield Path(d)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--outage", type=float, default=30.0, help="seconds Redis is away")
    parser.add_argument("--visibility-timeout", type=float, default=5.0)
    parser.add_argument("--task-seconds", type=float, default=0.01)
    parser.add_argument("--backends", default="sqlite,redis")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    command = "python benchmarks/reliability.py " + " ".join(sys.argv[1:] if argv is None else argv)
    vt = args.visibility_timeout
    outcomes = []
    backends = args.backends.split(",")
    if "sqlite" in backends:
        with _tempdir("sqlite") as d:
            url = f"sqlite:///{d / 'soak.db'}?visibility_timeout={vt:g}"
            outcomes.append(sigkill_run(url, d, "sqlite", tasks=args.tasks, kills=args.kills,
                                        seconds=args.task_seconds))  # fmt: skip
        with _tempdir("sqlite-term") as d:
            url = f"sqlite:///{d / 'term.db'}?visibility_timeout={vt:g}"
            outcomes.append(sigterm_run(url, d, "sqlite", task_seconds=5, shutdown_timeout=1))
    if "redis" in backends:
        with _tempdir("redis") as d, RedisServer(appendonly=True) as server:
            url = server.url + f"?visibility_timeout={vt:g}"
            outcomes.append(sigkill_run(url, d, "redis", tasks=args.tasks, kills=args.kills,
                                        seconds=args.task_seconds))  # fmt: skip
        with _tempdir("redis-restart") as d, RedisServer(appendonly=True) as server:
            outcomes.append(redis_restart_run(server, d, tasks=args.tasks, restarts=3))
        with _tempdir("redis-outage") as d, RedisServer(appendonly=True) as server:
            outcomes.append(redis_outage_run(server, d, tasks=args.tasks, outage=args.outage))
        with _tempdir("redis-freeze") as d, RedisServer(appendonly=True) as server:
            outcomes.append(
                redis_outage_run(server, d, tasks=args.tasks, outage=args.outage, freeze=True)
            )
        with _tempdir("redis-term") as d, RedisServer(appendonly=True) as server:
            outcomes.append(sigterm_run(server.url, d, "redis", task_seconds=1,
                                        shutdown_timeout=10))  # fmt: skip
    text = report(outcomes, command)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 1 if any(o.lost for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
