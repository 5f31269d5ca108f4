"""SQLite under a full disk and a lock held by another process: clear errors, no damage.

The full disk is a 32 MiB tmpfs mounted for the test (this needs root, as in CI here); where
mounting is not allowed the same test fills the disk with ``RLIMIT_FSIZE`` instead, in a
child process, which SQLite sees as a failed write just the same.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks.reliability import Cluster, Outcome
from fluxqueue import BrokerConnectionError, FluxQueue


@contextmanager
def small_disk(where: Path, size: str = "32m") -> Iterator[bool]:
    """Mount a tmpfs of ``size`` on ``where``; yields False if mounting is not possible."""
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
    )
    try:
        yield done.returncode == 0
    finally:
        if done.returncode == 0:
            subprocess.run(["umount", "-l", str(where)], check=False)


def integrity(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def enqueue_until_full(app: FluxQueue) -> tuple[int, BrokerConnectionError]:
    sent = 0
    work = app.named("work")
    for _ in range(10_000):
        try:
            app.enqueue_many([work.message(sent + i, 0.0) for i in range(100)])
        except BrokerConnectionError as exc:
            return sent, exc
        sent += 100
    raise AssertionError("the disk never filled up")


def test_full_disk_is_a_clear_error_and_nothing_is_damaged(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    with small_disk(disk) as mounted:
        if not mounted:
            _full_disk_by_rlimit(tmp_path)
            return
        db = disk / "q.db"
        cluster = Cluster(f"sqlite:///{db}?visibility_timeout=2&lock_timeout=2", tmp_path)
        try:
            # Leave a little room, then fill it with tasks until the disk is full. (Freeing
            # it later must leave room for the WAL to grow until a checkpoint, about 4 MiB:
            # a smaller disk stays full.)
            filler = disk / "filler"
            cluster.app.run(cluster.app.broker.stats())  # creates the database
            free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
            filler.write_bytes(b"\0" * max(0, free - 400_000))
            sent, error = enqueue_until_full(cluster.app)
            assert sent > 0
            assert "disk is full" in str(error) and "nothing already stored is lost" in str(error)
            assert integrity(db) == "ok"
            stats = cluster.app.run(cluster.app.admin.stats(["default"])).queues[0]
            assert stats.total_ready == sent  # the failed batch was rolled back whole

            # A worker started on the full disk waits; once space is freed, all complete.
            worker = cluster.start_worker()
            time.sleep(2)
            assert worker.poll() is None, cluster.logs()
            filler.unlink()
            cluster.wait_finished(sent, timeout=60)
            cluster.wait_drained(timeout=60)
            outcome = cluster.tally(Outcome("sqlite", "disk-full"), _ids(cluster, sent))
            assert outcome.completed >= sent
            assert worker.poll() is None
            assert integrity(db) == "ok"
        finally:
            cluster.stop()


def _ids(cluster: Cluster, count: int) -> list[str]:
    """Task ids of everything stored: (task index, id) from the states table."""
    db = sqlite3.connect(cluster.url.split("sqlite:///", 1)[1].split("?")[0])
    try:
        return [row[0] for row in db.execute("SELECT id FROM states")]
    finally:
        db.close()


def _full_disk_by_rlimit(tmp_path: Path) -> None:
    db = tmp_path / "limited.db"
    script = textwrap.dedent(
        f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        from fluxqueue import FluxQueue, BrokerConnectionError
        fq = FluxQueue("sqlite:///{db}")
        fq.enqueue("t", 0)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        sent = 0
        try:
            while True:
                fq.enqueue_many([fq.named("t").message(i) for i in range(200)])
                sent += 200
        except BrokerConnectionError as exc:
            print(sent + 1, exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    sent, _, message = done.stdout.strip().partition(" ")
    assert "nothing already stored is lost" in message
    assert integrity(db) == "ok"
    app = FluxQueue(f"sqlite:///{db}")
    assert app.run(app.admin.stats(["default"])).queues[0].total_ready == int(sent)


def test_file_size_limit_is_a_clear_error(tmp_path: Path) -> None:
    """The ``RLIMIT_FSIZE`` variant runs everywhere, root or not."""
    _full_disk_by_rlimit(tmp_path)


HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


def test_lock_held_by_another_process(tmp_path: Path) -> None:
    """Producers get a clear error after lock_timeout; workers wait and finish everything."""
    db = tmp_path / "q.db"
    cluster = Cluster(f"sqlite:///{db}?visibility_timeout=2&lock_timeout=1", tmp_path)
    holder = None
    try:
        cluster.start_worker()
        ids = cluster.enqueue(2000, 0.005)
        cluster.wait_finished(50, timeout=60)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(db), "4"], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        t0 = time.monotonic()
        with pytest.raises(BrokerConnectionError, match=r"stayed locked .*lock_timeout"):
            cluster.enqueue(1, 0.0)
        assert time.monotonic() - t0 < 10  # about lock_timeout, never a hang
        assert holder.wait(30) == 0
        ids += cluster.enqueue(10, 0.0)  # works again as soon as the lock is gone
        cluster.wait_finished(2010, timeout=90)
        cluster.wait_drained(timeout=60)
        outcome = cluster.tally(Outcome("sqlite", "lock"), ids)
        assert outcome.lost == 0 and outcome.completed == 2010
        assert all(p.poll() is None for p in cluster.workers), cluster.logs()
        assert integrity(db) == "ok"
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait()
        cluster.stop()
