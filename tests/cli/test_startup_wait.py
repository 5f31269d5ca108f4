"""A worker started while its broker is down keeps trying, for a bounded time (issue 15,
item 4); what waiting cannot fix (a wrong password, an unknown scheme, a malformed URL)
fails at once. Real ``fluxqueue start`` subprocesses and a real ``redis-server``."""

from __future__ import annotations

import re
import signal

import pytest

from tests.cli.conftest import Project
from tests.redis_server import RedisServer, free_port

RETRY = "trying again in"


def test_a_worker_waits_for_a_redis_that_starts_later(project: Project) -> None:
    port = free_port()
    project.url = f"redis://127.0.0.1:{port}/0"
    worker = project.start("-t", "jobs.py", "--startup-timeout", "120")
    worker.wait_for("attempt 2 failed")  # it is waiting, one line per attempt
    with RedisServer(port=port):
        worker.wait_for("serving default")
        task_id = project.enqueue("add", "--args", "[2, 3]")
        assert project.ok("result", task_id, "--wait", "30").strip() == "5"
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    log = worker.output
    attempts = [line for line in log.splitlines() if RETRY in line]
    numbers = [int(n) for n in re.findall(r"attempt (\d+) failed", "\n".join(attempts))]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 2
    assert all(f"cannot reach Redis at 127.0.0.1:{port}" in line for line in attempts)
    assert "is unreachable" not in log  # the backend's own warning is not repeated
    assert "Error" not in log


def test_the_wait_is_bounded_and_set_by_the_environment(project: Project) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = project.run(
        "start", "-t", "jobs.py", "-b", url, env={"FLUXQUEUE_STARTUP_TIMEOUT": "1.5"}
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and "cannot reach Redis" in errors[0]
    tried = re.search(r"gave up after (\d+) attempts", errors[0])
    assert tried is not None
    assert len([line for line in lines if RETRY in line]) == int(tried.group(1)) - 1
    assert len(lines) == int(tried.group(1))  # the attempts, then the error: nothing else


def test_a_wrong_password_fails_at_once(project: Project) -> None:
    with RedisServer(password="right-one") as server:
        url = f"redis://:wrong-one@127.0.0.1:{server.port}/0"
        done = project.run("start", "-t", "jobs.py", "--startup-timeout", "120", "-b", url)
    assert done.returncode == 1
    assert RETRY not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: cannot use broker redis://:***@127.0.0.1:")
    assert "wrong-one" not in line


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("kafka://localhost:9092", "unknown broker URL scheme 'kafka'"),
        ("localhost:6379", "malformed broker URL 'localhost:6379'"),
        ("redis://127.0.0.1:notaport/0", "the port is not a number"),
    ],
)
def test_what_waiting_cannot_fix_fails_at_once(project: Project, url: str, message: str) -> None:
    done = project.run("start", "-t", "jobs.py", "--startup-timeout", "120", "-b", url)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: ") and message in line
