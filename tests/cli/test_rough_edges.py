"""CLI rough edges (issue 15, item 7): one line per error, memory:// refused where a task
would vanish, Ctrl-C explained, a slow stop explained, drained queues alike everywhere."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from fluxqueue import FluxQueue
from fluxqueue.cli.queue_commands import shown_queues
from fluxqueue.cli.quiet_errors import repeats
from tests.cli.conftest import Project
from tests.redis_server import free_port


def only_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    return lines[0]


@pytest.mark.parametrize("command", [["info"], ["status", "abc"], ["start", "-t", "jobs.py"]])
def test_an_unreachable_broker_is_one_error_line(project: Project, command: list[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = project.run(*command, "-b", url, env={"FLUXQUEUE_STARTUP_TIMEOUT": "0"})
    assert done.returncode == 1
    assert "cannot reach Redis at 127.0.0.1:" in only_error_line(done.stderr)


def test_a_log_line_that_repeats_the_error_is_dropped_and_others_kept() -> None:
    error = "cannot use broker redis://h:1/0: cannot reach Redis at h:1: [Errno 111] refused"
    assert repeats(
        "Redis at h:1 is unreachable: cannot reach Redis at h:1: [Errno 111] refused", error
    )
    assert not repeats("plugin 'x' failed to load: ImportError: no module named x", error)
    assert not repeats("retrying: refused", "refused")  # a short tail is not a repeat


def test_enqueue_refuses_a_broker_private_to_the_command(project: Project) -> None:
    done = project.run("enqueue", "add", "--args", "[1, 2]", "-b", "memory://")
    assert done.returncode == 1
    line = only_error_line(done.stderr)
    assert "memory:// is private to one process" in line and "would vanish" in line
    assert done.stdout == ""  # no id for a task that does not exist anywhere


def test_several_workers_on_memory_are_refused_before_the_banner(project: Project) -> None:
    done = project.run("start", "-t", "jobs.py", "-w", "2", "-b", "memory://")
    assert done.returncode == 1
    assert "--workers 2 needs a broker shared between processes" in only_error_line(done.stderr)
    assert done.stdout == ""


def test_ctrl_c_says_a_second_one_forces_and_the_stop_says_what_it_waits_for(
    project: Project,
) -> None:
    task_id = project.enqueue("nap", "--args", "[30]")
    worker = project.start("-t", "jobs.py", "--shutdown-timeout", "60")
    worker.wait_for(f"nap[{task_id}] started")
    worker.signal(signal.SIGINT)
    worker.wait_for("press Ctrl-C again to stop at once")
    worker.wait_for("still waiting for 1 running task(s)", timeout=20)
    assert f"nap[{task_id}]" in worker.output.split("still waiting for", 1)[1]
    worker.signal(signal.SIGINT)
    assert worker.wait() == 0
    assert "second interrupt: stopping now" in worker.output


@pytest.fixture(params=["memory", "sqlite", "redis"])
def drained_app(request: pytest.FixtureRequest, tmp_path: Path) -> FluxQueue:
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'q.db'}"}.get(
        request.param
    ) or request.getfixturevalue("redis_url")
    app = FluxQueue(url)
    app.task(name="one")(lambda: 1)
    handle = app.enqueue("one")
    app.run_worker(burst=True)
    assert handle.result(timeout=5) == 1
    return app


def test_info_shows_a_drained_queue_the_same_way_on_every_backend(drained_app: FluxQueue) -> None:
    stats = asyncio.run(drained_app.admin.stats(None))
    assert shown_queues(stats, ()) == []  # nothing in any queue: none listed
    asked = asyncio.run(drained_app.admin.stats(["default"]))
    (default,) = shown_queues(asked, ("default", "default"))
    assert (default.name, default.total_ready, default.scheduled, default.dead) == (
        "default", 0, 0, 0,
    )  # fmt: skip
    drained_app.close()


def test_info_on_a_drained_queue(project: Project) -> None:
    project.enqueue("add", "--args", "[1, 2]")
    assert project.run("start", "-t", "jobs.py", "--burst", "-b", project.url).returncode == 0
    assert project.json("info")["queues"] == []
    assert project.ok("info").splitlines()[0] == "no tasks in any queue"
    (default,) = project.json("info", "-q", "default")["queues"]
    assert default["name"] == "default" and default["ready_total"] == 0
