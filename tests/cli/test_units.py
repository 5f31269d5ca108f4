"""The CLI's pieces in-process: option parsing (click's CliRunner, memory://), discovery,
supervisor helpers. Fast; the end-to-end tests run the real processes."""

from __future__ import annotations

import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fluxqueue.cli import cli, serve
from fluxqueue.cli.discovery import discover, module_name_for
from fluxqueue.cli.options import broker_options, broker_url_from, split_values
from fluxqueue.cli.start import StartConfig
from fluxqueue.cli.supervisor import describe_exit
from fluxqueue.errors import ConfigurationError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "FLUXQUEUE_BROKER_URL",
        "FLUXQUEUE_REDIS_URL",
        "FLUXQUEUE_TASKS_MODULE_PATH",
        "FLUXQUEUE_QUEUE",
        "FLUXQUEUE_ACCEPT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_split_values_accepts_repeats_and_commas() -> None:
    assert split_values(("a,b", "c", " b ,", "")) == ["a", "b", "c"]
    assert split_values("x, y") == ["x", "y"]
    assert split_values(None) == []


@click.command()
@broker_options
@click.pass_context
def _which(ctx: click.Context, broker_url: str | None, redis_url: str | None) -> None:
    click.echo(str(broker_url_from(ctx, broker_url, redis_url)))


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, "None"),
        ([], {"FLUXQUEUE_REDIS_URL": "redis://r"}, "redis://r"),
        (
            [],
            {"FLUXQUEUE_BROKER_URL": "sqlite:///b", "FLUXQUEUE_REDIS_URL": "redis://r"},
            "sqlite:///b",
        ),
        (["-r", "redis://flag"], {"FLUXQUEUE_BROKER_URL": "sqlite:///b"}, "redis://flag"),
        (["-b", "memory://"], {"FLUXQUEUE_REDIS_URL": "redis://r"}, "memory://"),
    ],
)
def test_flags_win_over_variables(args: list[str], env: dict[str, str], expected: str) -> None:
    result = CliRunner().invoke(_which, args, env=env)
    assert result.output.strip() == expected


def test_both_broker_flags_are_an_error() -> None:
    result = CliRunner().invoke(_which, ["-b", "memory://", "-r", "redis://x"])
    assert result.exit_code == 1
    assert "either --broker-url or --redis-url" in result.output


def test_enqueue_refuses_and_status_does_not_know_memory_tasks() -> None:
    runner = CliRunner()
    # memory:// is private to each process (here: each command): the task would vanish.
    result = runner.invoke(cli, ["enqueue", "x", "--args", "[1]", "-b", "memory://"])
    assert result.exit_code == 1 and "would vanish" in result.output
    result = runner.invoke(cli, ["status", "0" * 32, "-b", "memory://"])
    assert result.exit_code == 1 and "is unknown" in result.output
    result = runner.invoke(cli, ["enqueue", "x", "--priority", "urgent", "-b", "memory://"])
    assert result.exit_code == 2 and "Invalid value for '--priority'" in result.output


def test_start_reads_its_variables() -> None:
    result = CliRunner().invoke(
        cli,
        ["start", "--burst"],
        env={"FLUXQUEUE_TASKS_MODULE_PATH": "", "FLUXQUEUE_BROKER_URL": "memory://"},
    )
    assert result.exit_code == 1
    assert "no tasks module" in result.output


def test_child_command_line_keeps_every_option() -> None:
    config = StartConfig(
        module_paths=["a.tasks", "b.py"],
        queues=["default", "urgent"],
        concurrency=4,
        prefetch=0,
        broker_url="redis://:secret@h/0",
        workers=3,
        burst=True,
        shutdown_timeout=2.5,
        accept=["pickle"],
        log_level="debug",
        log_format="json",
    )
    argv = config.child_argv()
    assert argv[:6] == [sys.executable, "-m", "fluxqueue.cli", "start", "-w", "1"]
    assert "secret" not in " ".join(argv)  # the URL travels by environment
    joined = " ".join(argv[6:])
    assert joined == (
        "-t a.tasks,b.py -c 4 -q default -q urgent --prefetch 0 --shutdown-timeout 2.5 "
        "--startup-timeout 30.0 "
        "--log-level debug "
        "--log-format json --accept pickle --burst"
    )


def test_describe_exit() -> None:
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(3) == "exited with status 3"


def test_module_names_for_paths(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / "tasks.py").write_text("")
    (tmp_path / "pkg" / "__init__.py").write_text("")
    assert module_name_for("pkg.sub.tasks", tmp_path) == ("pkg.sub.tasks", None)
    assert module_name_for("pkg/sub/tasks.py", tmp_path) == ("pkg.sub.tasks", None)
    assert module_name_for("pkg/__init__.py", tmp_path) == ("pkg", None)
    assert module_name_for("./pkg/", tmp_path) == ("pkg", None)
    elsewhere = tmp_path / "pkg" / "sub"
    assert module_name_for(str(elsewhere / "tasks.py"), elsewhere / "x") == ("tasks", elsewhere)
    with pytest.raises(ConfigurationError, match="no such file"):
        module_name_for("nope/tasks.py", tmp_path)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_discovery_without_all_scans_attributes(in_tmp: Path) -> None:
    (in_tmp / "plain_tasks.py").write_text(
        textwrap.dedent(
            """
            from fluxqueue import FluxQueue

            fq = FluxQueue("memory://")

            @fq.task()
            def one() -> None: ...

            @fq.task(queue="other")
            def two() -> None: ...

            helper = fq.named("elsewhere")  # a sender, not a task: not served
            """
        )
    )
    found = discover(["plain_tasks"], ["default", "other"])
    assert {q: [t.task_name for t in ts] for q, ts in found.by_queue.items()} == {
        "default": ["one"],
        "other": ["two"],
    }
    assert found.app is found.tasks[0].app


def test_discovery_honours_all(in_tmp: Path) -> None:
    (in_tmp / "listed.py").write_text(
        textwrap.dedent(
            """
            from fluxqueue import FluxQueue

            fq = FluxQueue("memory://")
            __all__ = ["shown"]

            @fq.task()
            def shown() -> None: ...

            @fq.task()
            def hidden() -> None: ...
            """
        )
    )
    found = discover(["listed.py"], ["default"])
    assert [t.task_name for t in found.tasks] == ["shown"]
    # The worker still runs every task its app knows (hidden is registered).
    assert set(found.app.tasks) == {"shown", "hidden"}


def test_no_handover_in_process_or_under_a_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    """``cli`` invoked from Python (CliRunner, an embedding app) serves in its own process,
    and so does a command line run under a debugger, profiler or coverage tracer."""
    assert not serve.can_hand_over()
    monkeypatch.setattr(serve, "STANDALONE", True)
    if sys.gettrace() is None and sys.getprofile() is None:  # not when the suite is traced
        assert serve.can_hand_over()
    previous = sys.gettrace()
    sys.settrace(lambda *args: None)
    try:
        assert not serve.can_hand_over()
    finally:
        sys.settrace(previous)
