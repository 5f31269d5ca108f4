"""The admin commands, as a person reads them (tables) and as a script does (--json)."""

from __future__ import annotations

import json
import signal

from tests.cli.conftest import Project


def test_enqueue_prints_the_id_and_respects_options(project: Project) -> None:
    task_id = project.enqueue("add", "--args", "[1, 2]")
    assert len(task_id) == 32 and task_id.isalnum()
    sent = project.json(
        "enqueue", "add", "--kwargs", '{"a": 1, "b": 2}', "-q", "maths", "--priority", "high"
    )
    assert sent["task"] == "add" and sent["queue"] == "maths"
    later = project.json("enqueue", "add", "--args", "[0, 0]", "--delay", "60", "--task-id", "x1")
    assert later["id"] == "x1"

    info = project.json("info")
    queues = {q["name"]: q for q in info["queues"]}
    assert queues["maths"]["ready"]["high"] == 1
    assert queues["default"]["ready"]["normal"] == 1
    assert queues["default"]["scheduled"] == 1
    assert info["workers"] == []
    assert project.json("status", "x1")["status"] == "SCHEDULED"


def test_enqueue_rejects_bad_json_in_one_line(project: Project) -> None:
    done = project.run("enqueue", "add", "--args", "{not json", "-b", project.url)
    assert done.returncode == 2
    assert "--args" in done.stderr and "not valid JSON" in done.stderr
    done = project.run("enqueue", "add", "--kwargs", "[1]", "-b", project.url)
    assert done.returncode == 2 and "must be a JSON object" in done.stderr
    assert "Traceback" not in done.stderr


def test_status_result_and_info_tables_after_a_run(project: Project) -> None:
    good = project.enqueue("add", "--args", "[20, 22]")
    bad = project.enqueue("boom", "-t", "jobs", "--args", '["kaput"]')
    table = project.ok("info")
    assert table.splitlines()[0].split() == [
        "QUEUE", "CRITICAL", "HIGH", "NORMAL", "LOW", "SCHEDULED", "RUNNING", "DEAD",
    ]  # fmt: skip
    assert table.splitlines()[1].split() == ["default", "0", "0", "2", "0", "0", "0", "0"]
    assert "no live workers" in table

    pending = project.run("result", good, "-b", project.url)
    assert pending.returncode == 3 and "has not finished (status PENDING)" in pending.stderr

    done = project.run("start", "-t", "jobs", "--burst", "-b", project.url)
    assert done.returncode == 0, done.stderr

    assert project.ok("result", good).strip() == "42"
    assert project.json("result", good) == {"id": good, "status": "SUCCESS", "result": 42}
    status = project.ok("status", good)
    assert "status:    SUCCESS" in status and "task:      add" in status
    assert "result:    42" in status
    assert project.json("status", good)["attempts"] == 1

    failed = project.run("result", bad, "-b", project.url, "--traceback")
    assert failed.returncode == 1
    assert f"Error: task {bad} failed: ValueError: kaput" in failed.stderr
    assert "raise ValueError(message)" in failed.stderr  # the remote traceback
    failed = project.run("result", bad, "-b", project.url, "--json")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["error_type"] == "ValueError"
    assert "status:    FAILURE" in project.ok("status", bad)
    assert "error:     ValueError: kaput" in project.ok("status", bad)


def test_unknown_ids_are_reported_not_crashed_on(project: Project) -> None:
    for command in ("result", "status"):
        done = project.run(command, "nosuchid", "-b", project.url)
        assert done.returncode == 1
        assert done.stderr.strip() == (
            "Error: task nosuchid is unknown: never enqueued on this broker, or its record "
            "has expired"
        )
    done = project.run("abort", "nosuchid", "-b", project.url)
    assert done.returncode == 1 and "nothing to abort" in done.stderr


def test_result_wait_times_out_with_status_3(project: Project) -> None:
    task_id = project.enqueue("add", "--args", "[1, 1]")
    done = project.run("result", task_id, "--wait", "0.3", "-b", project.url)
    assert done.returncode == 3
    assert "has not finished within 0.3s (status PENDING)" in done.stderr


def test_abort_a_waiting_and_a_running_task(project: Project) -> None:
    waiting = project.enqueue("add", "--args", "[1, 1]")
    assert (
        project.ok("abort", waiting).strip() == f"task {waiting} aborted (removed from its queue)"
    )
    assert project.json("status", waiting)["status"] == "ABORTED"
    failed = project.run("result", waiting, "-b", project.url)
    assert failed.returncode == 1 and "was aborted" in failed.stderr

    worker = project.start("-t", "jobs")
    worker.wait_for("serving default")
    running = project.enqueue("nap", "--args", "[20]")
    worker.wait_for(f"nap[{running}] started")
    assert project.json("abort", running) == {"id": running, "outcome": "requested"}
    worker.wait_for(f"nap[{running}] aborted")
    assert project.json("status", running)["status"] == "ABORTED"
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_info_lists_live_workers(project: Project) -> None:
    worker = project.start("-t", "jobs", "-c", "2")
    worker.wait_for("serving default")
    info = project.json("info")
    assert [(w["pid"], w["queues"], w["concurrency"]) for w in info["workers"]] == [
        (worker.proc.pid, ["default"], 2)
    ]
    table = project.ok("info")
    assert "WORKER" in table and f"  {worker.proc.pid}  default  2  " in table
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_dead_letters_list_retry_purge(project: Project) -> None:
    bad = [project.enqueue("boom", "-t", "jobs", "--args", f'["no {i}"]') for i in range(3)]
    assert project.run("start", "-t", "jobs", "--burst", "-b", project.url).returncode == 0

    table = project.ok("dead", "list")
    assert table.splitlines()[0].split() == ["ID", "TASK", "ATTEMPTS", "FAILED", "AT", "REASON"]
    assert all(task_id in table for task_id in bad) and "ValueError: no 1" in table
    letters = project.json("dead", "list", "--queue", "default")
    assert sorted(d["id"] for d in letters) == sorted(bad)  # they fail concurrently
    assert {d["task"] for d in letters} == {"boom"} and letters[0]["attempts"] == 1

    assert (
        project.ok("dead", "retry", bad[0]).strip() == "retried 1 dead letter(s) of queue default"
    )
    assert project.json("status", bad[0])["status"] == "PENDING"
    assert project.json("dead", "retry", "-q", "default") == {
        "queue": "default", "retried": 2, "skipped": 0,
    }  # fmt: skip
    assert project.json("info")["queues"][0]["ready_total"] == 3

    assert project.run("start", "-t", "jobs", "--burst", "-b", project.url).returncode == 0
    assert len(project.json("dead", "list")) == 3
    assert (
        project.ok("dead", "purge", "--yes").strip()
        == "removed 3 dead letter(s) from queue default"
    )
    assert project.json("dead", "purge") == {"queue": "default", "removed": 0}
    assert project.ok("dead", "list").strip() == "no dead letters in queue default"


def test_purge_a_queue(project: Project) -> None:
    for i in range(3):
        project.enqueue("add", "--args", f"[{i}, 0]")
    project.enqueue("add", "--args", "[9, 9]", "--delay", "60")
    assert project.ok("purge", "default").strip() == "purged 4 task(s) from queue default"
    assert project.json("purge", "default", "-y") == {"queue": "default", "purged": 0}
    assert project.json("info")["queues"] in ([], [{"name": "default", "ready": {
        "critical": 0, "high": 0, "normal": 0, "low": 0}, "ready_total": 0,
        "scheduled": 0, "running": 0, "dead": 0}])  # fmt: skip


def test_broker_variables_and_flags(project: Project) -> None:
    task_id = project.run("enqueue", "add", env={"FLUXQUEUE_BROKER_URL": project.url})
    assert task_id.returncode == 0, task_id.stderr
    rust_variable = {"FLUXQUEUE_REDIS_URL": project.url}
    assert project.run("status", task_id.stdout.strip(), env=rust_variable).returncode == 0
    # A flag wins over the variable.
    other = f"sqlite:///{project.root / 'other.db'}"
    done = project.run("status", task_id.stdout.strip(), "-b", other, env=rust_variable)
    assert done.returncode == 1 and "unknown" in done.stderr
    both = project.run("info", "-b", project.url, "-r", other)
    assert both.returncode == 1 and "either --broker-url or --redis-url" in both.stderr


def test_plugins_command(project: Project) -> None:
    done = project.run("plugins", "--json")
    assert done.returncode == 0
    assert any("sqlite" in p["brokers"] for p in json.loads(done.stdout))
