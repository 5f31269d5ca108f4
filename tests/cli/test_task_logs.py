"""The worker's task log lines (issue 15, item 6): a failure's traceback once, on the
final failure; a retry is one line; JSON lines carry the task's fields as keys."""

from __future__ import annotations

import json
import textwrap

from tests.cli.conftest import Project

FLAKY = """
    from fluxqueue import FluxQueue

    fq = FluxQueue()

    @fq.task(max_retries=1, backoff=0)
    def flaky(n: int) -> None:
        raise RuntimeError(f"broken-{n}")

    @fq.task()
    def fine() -> int:
        return 1
"""


def project_with_flaky_task(project: Project) -> None:
    (project.root / "flaky.py").write_text(textwrap.dedent(FLAKY).lstrip())


def test_the_traceback_is_logged_once_on_the_final_failure(project: Project) -> None:
    project_with_flaky_task(project)
    project.enqueue("flaky", "--args", "[7]")
    done = project.run("start", "-t", "flaky.py", "--burst", "-b", project.url)
    assert done.returncode == 0, done.stderr
    log = done.stderr
    assert log.count("Traceback (most recent call last)") == 1, log
    retry_line, final_line = (
        line for line in log.splitlines() if "flaky[" in line and "failed" in line
    )
    assert "retry 1/1" in retry_line and "WARNING" in retry_line
    assert "failed for good" in final_line and "ERROR" in final_line
    after_final = log.split(final_line, 1)[1]
    assert "Traceback (most recent call last)" in after_final
    assert 'raise RuntimeError(f"broken-{n}")' in after_final
    assert "RuntimeError: broken-7" in after_final


def test_json_task_lines_carry_the_task_fields(project: Project) -> None:
    project_with_flaky_task(project)
    failing = project.enqueue("flaky", "--args", "[1]")
    working = project.enqueue("fine")
    done = project.run(
        "start", "-t", "flaky.py", "--burst", "--log-format", "json", "-b", project.url
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    tasks = [line for line in lines if "task_id" in line]
    keys = {"task_id", "task", "queue", "attempt", "duration_ms", "status"}
    assert tasks and all(keys <= set(line) for line in tasks), tasks

    def history(task_id: str) -> list[tuple[str, int]]:
        return [(line["status"], line["attempt"]) for line in tasks if line["task_id"] == task_id]

    assert history(failing) == [("STARTED", 1), ("RETRYING", 1), ("STARTED", 2), ("FAILURE", 2)]
    assert history(working) == [("STARTED", 1), ("SUCCESS", 1)]
    final = next(line for line in tasks if line["status"] == "FAILURE")
    assert final["task"] == "flaky" and final["queue"] == "default"
    assert isinstance(final["duration_ms"], float)
    assert "RuntimeError: broken-1" in final["exc_info"]
    retried = next(line for line in tasks if line["status"] == "RETRYING")
    assert "exc_info" not in retried
