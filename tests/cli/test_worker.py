"""``fluxqueue start`` end to end: real worker processes, tasks enqueued from other processes."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from tests.cli.conftest import Project


@pytest.fixture(params=["sqlite", "redis"])
def any_project(request: pytest.FixtureRequest, project: Project) -> Project:
    """The project on SQLite, then on a private redis-server (tests/conftest.py)."""
    if request.param == "redis":
        project.url = request.getfixturevalue("redis_url") + "?visibility_timeout=2"
    return project


def test_fluxqueue_defining_tasks_layout_one_worker_per_queue(any_project: Project) -> None:
    project = any_project
    default = project.start("--tasks-module-path", "myapp.tasks", "--queue", "default")
    urgent = project.start("-t", "myapp.tasks", "-q", "urgent")
    default.wait_for("serving default")
    urgent.wait_for("serving urgent")

    email = project.enqueue("send_email", "--args", '["ada@example.com", "Hi", "Hello"]')
    note = project.enqueue("send_notification", "--kwargs", '{"user_id": 7, "message": "yo"}')
    # -t imports the tasks, so the task's own queue (urgent) applies.
    rush = project.enqueue("send_urgent_email", "-t", "myapp.tasks", "--args", '["bob", "now"]')

    assert project.ok("result", email, "--wait", "15").strip() == "Email to ada@example.com: Hi"
    assert project.ok("result", rush, "--wait", "15").strip() == "URGENT to bob: now"
    notification = json.loads(project.ok("result", note, "--wait", "15"))
    assert notification["user"] == 7
    assert notification["pid"] == default.proc.pid  # the default worker ran it

    # The banner lists what each worker found; the log says when each task ran and how long.
    assert "queue default: send_email, send_notification" in default.output
    assert "queue urgent: send_urgent_email" in urgent.output
    assert project.url.split("?")[0].split("://")[1] in default.output
    assert "concurrency 16 per process" in default.output
    default.wait_for(f"send_email[{email}] succeeded in")
    assert f"send_urgent_email[{rush}] started" in urgent.output
    assert rush not in default.output and email not in urgent.output

    for worker in (default, urgent):
        worker.signal(signal.SIGTERM)
    assert default.wait() == 0
    assert urgent.wait() == 0


def sigterm_during_a_nap(
    project: Project, tasks: str, seconds: float, timeout: float
) -> tuple[str, str]:
    """Start a worker, SIGTERM it while a task sleeps ``seconds``; it must exit 0. Returns
    the task id and the worker's output."""
    worker = project.start("-t", tasks, "--shutdown-timeout", str(timeout))
    worker.wait_for("serving default")
    task_id = project.enqueue("nap", "--args", f"[{seconds}]")
    worker.wait_for(f"nap[{task_id}] started")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    return task_id, worker.output


def test_sigterm_lets_the_running_task_finish(project: Project) -> None:
    task_id, output = sigterm_during_a_nap(project, "jobs", 1.5, timeout=10)
    assert f"nap[{task_id}] succeeded" in output
    assert json.loads(project.ok("result", task_id))["slept"] == 1.5


def test_sigterm_past_the_shutdown_timeout_hands_the_task_back(project: Project) -> None:
    task_id, output = sigterm_during_a_nap(project, "jobs.py", 30, timeout=0.5)
    assert f"nap[{task_id}] handed back" in output
    status = project.json("status", task_id)
    assert status["status"] == "PENDING"
    assert project.json("info")["queues"][0]["ready_total"] == 1


def test_burst_runs_what_is_ready_then_exits(project: Project) -> None:
    ids = [project.enqueue("add", "--args", f"[{i}, 1]") for i in range(5)]
    done = project.run("start", "-t", "jobs", "--burst", "-b", project.url)
    assert done.returncode == 0, done.stderr
    assert [project.ok("result", i).strip() for i in ids] == ["1", "2", "3", "4", "5"]
    # With a supervisor, each process exits when the queue is empty, then the supervisor.
    ids = [project.enqueue("add", "--args", f"[{i}, 10]") for i in range(4)]
    done = project.run("start", "-t", "jobs", "--burst", "-w", "2", "-b", project.url)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("exited with status 0") == 2
    assert [project.ok("result", i).strip() for i in ids] == ["10", "11", "12", "13"]


def test_supervisor_restarts_a_killed_worker_and_every_task_completes(
    any_project: Project,
) -> None:
    project = any_project
    ids = [project.enqueue("nap", "--args", "[0.4]") for _ in range(8)]
    supervisor = project.start("-t", "jobs", "-w", "2", "-c", "1", "--shutdown-timeout", "5")
    supervisor.wait_for("serving default", count=2)
    victim = int(re.findall(r"worker process 1 started \(pid (\d+)\)", supervisor.output)[0])
    # Its own first task (0.4 s) has started: the other worker's may start sooner.
    supervisor.wait_for(f"[{victim}] fluxqueue.worker: nap[")
    os.kill(victim, signal.SIGKILL)  # mid-task: its lease expires and the task runs again
    supervisor.wait_for("was killed by SIGKILL")
    supervisor.wait_for("worker process 1 started", count=2)

    results = {i: json.loads(project.ok("result", i, "--wait", "20")) for i in ids}
    assert all(r["slept"] == 0.4 for r in results.values())
    log = supervisor.output
    started = set(re.findall(rf"\[{victim}\] fluxqueue.worker: nap\[(\w+)\] started", log))
    finished = set(re.findall(rf"\[{victim}\] fluxqueue.worker: nap\[(\w+)\] succeeded", log))
    interrupted = started - finished
    assert interrupted, "the killed worker was running a task"
    assert all(results[i]["pid"] != victim for i in interrupted)

    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait() == 0
    assert supervisor.output.count("exited with status 0") == 2
    assert "supervisor stopped" in supervisor.output


def test_json_logs_are_one_object_per_line(project: Project) -> None:
    project.enqueue("add", "--args", "[2, 3]")
    done = project.run(
        "start", "-t", "jobs", "--burst", "-b", project.url, env={"FLUXQUEUE_LOG_FORMAT": "json"}
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert records[0]["message"].startswith("fluxqueue ")
    assert records[0]["broker"].startswith(project.url.split("://")[0] + "://")
    assert any(r["message"].startswith("add[") and "succeeded" in r["message"] for r in records)
    assert {"time", "level", "logger", "pid"} <= set(records[-1])


def test_variables_configure_the_worker_and_flags_win(project: Project) -> None:
    env = {
        "FLUXQUEUE_TASKS_MODULE_PATH": "myapp.tasks",
        "FLUXQUEUE_QUEUE": "urgent",
        "FLUXQUEUE_CONCURRENCY": "3",
        "FLUXQUEUE_BROKER_URL": project.url,
        "FLUXQUEUE_LOG_LEVEL": "warning",
    }
    done = project.run("start", "--burst", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # warning level: no banner
    done = project.run("start", "--burst", "-q", "default", "--log-level", "info", env=env)
    assert done.returncode == 0, done.stderr
    assert "queue default: send_email" in done.stderr
    assert "concurrency 3 per process" in done.stderr


def test_second_sigint_stops_at_once_and_hands_the_task_back(project: Project) -> None:
    worker = project.start("-t", "jobs", "--shutdown-timeout", "60")
    worker.wait_for("serving default")
    task_id = project.enqueue("nap", "--args", "[0.5]")
    long_id = project.enqueue("nap", "--args", "[60]")
    worker.wait_for(f"nap[{long_id}] started")
    worker.signal(signal.SIGINT)
    worker.wait_for("stopping: finishing")
    worker.signal(signal.SIGINT)
    assert worker.wait(timeout=15) == 0
    assert "second interrupt: stopping now" in worker.output
    assert f"nap[{long_id}] handed back" in worker.output
    assert project.json("status", long_id)["status"] == "PENDING"
    assert project.json("status", task_id)["status"] in ("SUCCESS", "PENDING")


def test_workers_stop_when_their_supervisor_is_killed(project: Project) -> None:
    supervisor = project.start("-t", "jobs", "-w", "2", "--shutdown-timeout", "5")
    supervisor.wait_for("serving default", count=2)
    children = [int(p) for p in re.findall(r"started \(pid (\d+)\)", supervisor.output)]
    assert len(children) == 2
    supervisor.signal(signal.SIGKILL)  # the supervisor dies without a word
    supervisor.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in children), "children stop when the supervisor is gone"
    assert supervisor.output.count("supervisor (pid") == 2


def test_supervisor_forwards_sigint(project: Project) -> None:
    supervisor = project.start("-t", "jobs", "-w", "2", "--shutdown-timeout", "5")
    supervisor.wait_for("serving default", count=2)
    supervisor.signal(signal.SIGINT)
    assert supervisor.wait() == 0
    assert "SIGINT received: stopping 2 worker process(es)" in supervisor.output
    assert supervisor.output.count("stopping: finishing 0 running task(s)") == 2


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
