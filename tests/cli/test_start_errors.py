"""Bad start-up input: one clear line on stderr, a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
import textwrap

import pytest

from tests.cli.conftest import Project


def fails(project: Project, *args: str, code: int = 1, env: dict[str, str] | None = None) -> str:
    done = project.run("start", "--burst", *args, env=env)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def write(project: Project, name: str, text: str) -> None:
    (project.root / name).write_text(textwrap.dedent(text).lstrip())


@pytest.mark.parametrize(
    ("files", "tasks", "messages"),
    [
        (
            {},
            "nosuch.tasks",
            ["cannot import tasks module 'nosuch.tasks': no module named 'nosuch'"],
        ),
        ({}, "app/tasks.py", ["'app/tasks.py': no such file or directory"]),
        (
            {"broken.py": "import fluxqueue\n\nvalue = 1 / 0\n"},
            "broken",
            [
                "cannot import tasks module 'broken': ZeroDivisionError: division by zero",
                "broken.py, line 3",
            ],
        ),
        (
            {"typo.py": "def oops(:\n    pass\n"},
            "typo.py",
            ["cannot import tasks module 'typo.py': SyntaxError"],
        ),
        (
            {"needs.py": "import not_installed_anywhere\n"},
            "needs",
            ["ModuleNotFoundError: No module named 'not_installed_anywhere'"],
        ),
        (
            {"empty.py": "from fluxqueue import FluxQueue\n\nfq = FluxQueue()\n"},
            "empty",
            ["no tasks found in empty"],
        ),
    ],
    ids=["no-module", "no-file", "raises", "syntax-error", "missing-dependency", "no-tasks"],
)
def test_a_tasks_module_that_cannot_serve(
    project: Project, files: dict[str, str], tasks: str, messages: list[str]
) -> None:
    for name, text in files.items():
        write(project, name, text)
    line = fails(project, "-t", tasks, "-b", project.url)
    for message in messages:
        assert message in line


def test_no_tasks_for_the_queue(project: Project) -> None:
    line = fails(project, "-t", "myapp.tasks", "-q", "reports", "-b", project.url)
    assert "no tasks for queue(s) reports in myapp.tasks (their tasks use: default, urgent)" in line


def test_all_names_a_missing_attribute(project: Project) -> None:
    write(project, "liar.py", "__all__ = ['ghost']\n")
    line = fails(project, "-t", "liar", "-b", project.url)
    assert "lists 'ghost' in __all__ but has no such attribute" in line


def test_no_tasks_module_at_all(project: Project) -> None:
    line = fails(project, "-b", project.url)
    assert "no tasks module: pass --tasks-module-path" in line


def test_same_task_name_in_two_modules(project: Project) -> None:
    for name in ("one", "two"):
        write(
            project,
            f"{name}.py",
            """
            from fluxqueue import FluxQueue

            fq = FluxQueue()

            @fq.task(name="dup")
            def work() -> None: ...
            """,
        )
    line = fails(project, "-t", "one,two", "-b", project.url)
    assert "task name 'dup' is defined twice: one.work and two.work" in line


def test_tasks_of_two_apps(project: Project) -> None:
    write(
        project,
        "other.py",
        """
        from fluxqueue import FluxQueue

        fq2 = FluxQueue()

        @fq2.task()
        def elsewhere() -> None: ...
        """,
    )
    line = fails(project, "-t", "jobs", "-t", "other", "-b", project.url)
    assert "the tasks belong to 2 different FluxQueue instances" in line
    assert "other.elsewhere" in line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_unreachable_broker(project: Project) -> None:
    url = f"redis://:secret@127.0.0.1:{_free_port()}/0"
    line = fails(project, "-t", "jobs", "--startup-timeout", "0", "-b", url)
    assert line.startswith("Error: cannot use broker redis://:***@127.0.0.1:")
    assert "secret" not in line


def test_unknown_scheme(project: Project) -> None:
    line = fails(project, "-t", "jobs", "-b", "kafka://localhost")
    assert "unknown broker URL scheme 'kafka'" in line


def test_unknown_scheme_from_the_variable(project: Project) -> None:
    line = fails(project, "-t", "jobs", env={"FLUXQUEUE_BROKER_URL": "nope://x"})
    assert "unknown broker URL scheme 'nope'" in line


def test_unknown_serializer(project: Project) -> None:
    line = fails(project, "-t", "jobs", "-b", project.url, "--accept", "yaml")
    assert "unknown serializer 'yaml'" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "0"], "Invalid value for '-c' / '--concurrency'"),
        (["--prefetch", "-1"], "Invalid value for '--prefetch'"),
        (["-w", "many"], "Invalid value for '-w' / '--workers'"),
        (["--log-format", "xml"], "Invalid value for '--log-format'"),
        (["--log-level", "loud"], "Invalid value for '--log-level'"),
        (["--shutdown-timeout", "-1"], "Invalid value for '--shutdown-timeout'"),
        (["--nosuch"], "No such option"),
    ],
)
def test_bad_flag_values(project: Project, args: list[str], message: str) -> None:
    line = fails(project, "-t", "jobs", "-b", project.url, *args, code=2)
    assert message in line


def test_bad_variable_value(project: Project) -> None:
    line = fails(
        project, "-t", "jobs", "-b", project.url, env={"FLUXQUEUE_CONCURRENCY": "x"}, code=2
    )
    assert "Invalid value for '-c' / '--concurrency'" in line


def test_memory_broker_cannot_be_shared_by_worker_processes(project: Project) -> None:
    line = fails(project, "-t", "jobs", "-b", "memory://", "-w", "2")
    assert "--workers 2 needs a broker shared between processes" in line
