from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fluxqueue.backends.sqlite import SQLiteBroker
from fluxqueue.errors import BrokerConnectionError, BrokerError, ConfigurationError
from fluxqueue.message import Delivery, Message
from fluxqueue.state import State
from fluxqueue.testing.contract import BrokerContract, MakeBroker, msg, put, run


class TestSQLiteBroker(BrokerContract):
    @pytest.fixture
    def make_broker(self, tmp_path: Path) -> MakeBroker:
        def make(visibility_timeout: float = 30.0) -> SQLiteBroker:
            return SQLiteBroker(
                f"sqlite:///{tmp_path}/q.db?visibility_timeout={visibility_timeout}"
            )

        return make


# -- URLs and options ----------------------------------------------------------------


def test_relative_url_is_resolved_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    broker = SQLiteBroker("sqlite:///data/q.db")
    assert broker.path == str(tmp_path / "data" / "q.db")
    assert str(tmp_path / "data" / "q.db") in repr(broker)
    assert not (tmp_path / "data" / "q.db").exists()  # created lazily, on first use
    m = msg()
    run(put(broker, m))
    assert (tmp_path / "data" / "q.db").exists()
    monkeypatch.chdir("/")  # the path was fixed at construction
    assert [d.task_id for d in run(broker.fetch(["q"], 1, 1.0))] == [m.id]
    run(broker.close())


def test_absolute_url_and_options(tmp_path: Path) -> None:
    broker = SQLiteBroker(f"sqlite:////{str(tmp_path).lstrip('/')}/abs.db?visibility_timeout=5")
    assert broker.path == str(tmp_path / "abs.db")
    assert broker.visibility_timeout == 5
    broker = SQLiteBroker(f"sqlite:///{tmp_path}/abs.db?lock_timeout=2.5")
    assert broker.lock_timeout == 2.5


def test_scheme_is_registered(tmp_path: Path) -> None:
    from fluxqueue import FluxQueue

    fq = FluxQueue(f"sqlite:///{tmp_path}/app.db")
    assert isinstance(fq.broker, SQLiteBroker)
    assert fq.broker.path == str(tmp_path / "app.db")


def test_unknown_options_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"colour.*flavour|flavour.*colour"):
        SQLiteBroker(f"sqlite:///{tmp_path}/q.db?colour=blue&flavour=x")
    with pytest.raises(ConfigurationError, match="lock_timeout must be a positive number"):
        SQLiteBroker(f"sqlite:///{tmp_path}/q.db?lock_timeout=never")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("sqlite://", "no file name"),
        ("sqlite:///", "no file name"),
        ("sqlite://localhost/q.db", "names a host"),
        ("sqlite:///:memory:", "memory://"),
        ("sqlite:////no/such/directory/q.db", "does not exist"),
    ],
)
def test_malformed_urls_are_explained(url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        SQLiteBroker(url)


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is a directory"):
        SQLiteBroker(f"sqlite:///{tmp_path}")


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_bytes(b"these are not the tables you are looking for" * 100)
    broker = SQLiteBroker(f"sqlite:///{tmp_path}/notes.txt")
    with pytest.raises(BrokerError, match="not a SQLite database"):
        run(put(broker, msg()))


def test_state_rows_expire_and_are_swept(tmp_path: Path) -> None:
    broker = SQLiteBroker(f"sqlite:///{tmp_path}/q.db")

    async def scenario() -> None:
        await broker.set_state("gone", State("SUCCESS", b"{}\n", ttl=0.05))
        await broker.set_state("kept", State("SUCCESS", b"{}\n"))
        await broker.add_output("gone", b"x", 0.05)
        await asyncio.sleep(0.1)
        await broker._sweep()
        rows = await broker._execute("SELECT id FROM states UNION ALL SELECT id FROM outputs")
        assert rows == [("kept",)]

    run(scenario())


# -- several processes -----------------------------------------------------------------

PRODUCER = """
import asyncio, sys
from fluxqueue.backends.sqlite import SQLiteBroker
from fluxqueue.message import Message

async def main(url, tag, n):
    broker = SQLiteBroker(url)
    for i in range(0, n, 10):  # many small transactions, to contend with the consumers
        batch = [Message(task="t", queue="q", body=f"{tag}-{j}".encode(),
                         content_type="text/plain") for j in range(i, min(i + 10, n))]
        await broker.enqueue(batch, 60)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""

CONSUMER = """
import asyncio, sys
from fluxqueue.backends.sqlite import SQLiteBroker
from fluxqueue.message import Message
from fluxqueue.state import State

async def main(url, expected, out):
    broker = SQLiteBroker(url)
    seen = []
    idle = 0
    while idle < 10:
        got = await broker.fetch(["q"], 5, 0.2)
        idle = 0 if got else idle + 1
        for d in got:
            seen.append(Message.decode(d.data).body.decode())
            await broker.ack(d, State("SUCCESS", b"", 60))
    with open(out, "w") as f:
        f.write("\\n".join(seen))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


def test_two_producer_and_two_consumer_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    n = 400
    consumers = [
        subprocess.Popen(
            [sys.executable, "-c", CONSUMER, url, str(n), str(tmp_path / f"seen{i}")],
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    producers = [
        subprocess.Popen([sys.executable, "-c", PRODUCER, url, tag, str(n)], stderr=subprocess.PIPE)
        for tag in ("a", "b")
    ]
    errors = []
    for proc in producers + consumers:
        _, err = proc.communicate(timeout=60)
        errors.append(err.decode())
        assert proc.returncode == 0, err.decode()
    assert not any("locked" in e for e in errors), errors
    seen = [line for i in range(2) for line in (tmp_path / f"seen{i}").read_text().split()]
    expected = sorted(f"{tag}-{j}" for tag in ("a", "b") for j in range(n))
    assert sorted(seen) == expected  # nothing lost, nothing twice
    assert all((tmp_path / f"seen{i}").read_text() for i in range(2)), "one consumer starved"


def test_polling_fallback_sees_other_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fluxqueue.backends.sqlite import _wait

    monkeypatch.setattr(_wait, "USE_INOTIFY", False)
    url = f"sqlite:///{tmp_path}/poll.db"
    broker = SQLiteBroker(url)

    async def scenario() -> list[Delivery]:
        await broker.fetch(["q"], 1, 0)  # creates the file
        waiting = asyncio.ensure_future(broker.fetch(["q"], 100, 10.0))
        await asyncio.sleep(0.3)  # long enough for the poll interval to back off
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", PRODUCER, url, "p", "5")
        assert await proc.wait() == 0
        return await waiting

    got = run(scenario())
    assert got and all(Message.decode(d.data).body.startswith(b"p-") for d in got)


WORKER = """
import os, sys, time
from fluxqueue import FluxQueue

fq = FluxQueue(sys.argv[1])
done_dir = sys.argv[2]

@fq.task(name="slow")
def slow(i):
    open(os.path.join(done_dir, f"started-{i}-{os.getpid()}"), "w").close()
    time.sleep(float(os.environ.get("SLOW", "0")))
    open(os.path.join(done_dir, f"done-{i}"), "w").close()
    return i

if __name__ == "__main__":
    if sys.argv[3] == "enqueue":
        for i in range(6):
            slow(i)
    else:
        fq.run_worker(concurrency=3)
"""


def test_killed_worker_tasks_are_delivered_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db?visibility_timeout=1"
    script = tmp_path / "tasks.py"
    script.write_text(WORKER)
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**os.environ, "SLOW": "30"}
    subprocess.run([sys.executable, str(script), url, str(marks), "enqueue"], check=True)

    victim = subprocess.Popen([sys.executable, str(script), url, str(marks), "work"], env=env)
    deadline = time.monotonic() + 20
    while len(list(marks.glob("started-*"))) < 3:  # mid-batch: three tasks running
        assert time.monotonic() < deadline, "the first worker never started its tasks"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not list(marks.glob("done-*"))

    env["SLOW"] = "0"
    rescuer = subprocess.Popen([sys.executable, str(script), url, str(marks), "work"], env=env)
    try:
        deadline = time.monotonic() + 30
        while len(list(marks.glob("done-*"))) < 6:
            assert time.monotonic() < deadline, sorted(p.name for p in marks.iterdir())
            time.sleep(0.05)
    finally:
        rescuer.send_signal(signal.SIGTERM)
        assert rescuer.wait(timeout=30) == 0
    runs: dict[str, int] = {}
    for mark in marks.glob("started-*"):
        task = mark.name.split("-")[1]
        runs[task] = runs.get(task, 0) + 1
    assert sorted(runs.values()).count(2) == 3  # the killed batch ran again, nothing else
    broker = SQLiteBroker(url)
    stats = run(broker.stats(["default"]))
    assert stats.queues[0].total_ready == stats.queues[0].running == 0
    rows = run(broker._execute("SELECT status, COUNT(*) FROM states GROUP BY status"))
    assert rows == [("SUCCESS", 6)]


# -- locks -------------------------------------------------------------------------------

HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
db.execute("INSERT INTO meta (key, value) VALUES ('holder', 'x')")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"locked\n"
    return proc


def test_locked_database_is_waited_for(tmp_path: Path) -> None:
    broker = SQLiteBroker(f"sqlite:///{tmp_path}/q.db")
    run(put(broker, msg()))
    holder = _hold_lock(tmp_path / "q.db", 0.7)

    async def scenario() -> float:
        start = time.monotonic()
        assert len(await broker.fetch(["q"], 1, 0)) == 1  # waits for the write lock
        await put(broker, msg())
        return time.monotonic() - start

    assert run(scenario()) > 0.3
    assert holder.wait(timeout=10) == 0
    integrity = run(broker._execute("PRAGMA integrity_check"))
    assert integrity == [("ok",)]


def test_lock_held_too_long_is_a_clear_error(tmp_path: Path) -> None:
    broker = SQLiteBroker(f"sqlite:///{tmp_path}/q.db?lock_timeout=0.3")
    run(put(broker, msg()))
    holder = _hold_lock(tmp_path / "q.db", 3)
    try:
        with pytest.raises(BrokerConnectionError, match=r"locked .*lock_timeout"):
            run(put(broker, msg()))
        # Readers are never blocked by a writer in WAL mode.
        stats = run(broker.stats(["q"]))
        assert stats.queues[0].total_ready == 1
    finally:
        holder.kill()
        holder.wait()
    run(put(broker, msg()))  # usable again once the lock is gone
    assert run(broker._execute("PRAGMA integrity_check")) == [("ok",)]
