"""Run the real ``fluxqueue`` command line as subprocesses against a SQLite file in tmp_path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The layout of FluxQueue's guide "Defining tasks", with return values to check.
PROJECT_FILES = {
    "myapp/__init__.py": "",
    "myapp/tasks/client.py": """
        from fluxqueue import FluxQueue

        fluxqueue = FluxQueue()
    """,
    "myapp/tasks/email.py": """
        from .client import fluxqueue

        @fluxqueue.task()
        def send_email(to: str, subject: str, body: str):
            return f"Email to {to}: {subject}"

        @fluxqueue.task(queue="urgent")
        def send_urgent_email(to: str, message: str):
            return f"URGENT to {to}: {message}"
    """,
    "myapp/tasks/notifications.py": """
        import os

        from .client import fluxqueue

        @fluxqueue.task()
        async def send_notification(user_id: int, message: str):
            return {"user": user_id, "message": message, "pid": os.getpid()}
    """,
    "myapp/tasks/__init__.py": """
        from .email import send_email, send_urgent_email
        from .notifications import send_notification

        __all__ = [
            "send_email",
            "send_urgent_email",
            "send_notification",
        ]
    """,
    # A single-file tasks module (FluxQueue's alternative) with slow and failing tasks.
    "jobs.py": """
        import os
        import time

        from fluxqueue import FluxQueue

        fq = FluxQueue()

        @fq.task()
        def nap(seconds: float) -> dict:
            time.sleep(seconds)
            return {"slept": seconds, "pid": os.getpid()}

        @fq.task(max_retries=0)
        def boom(message: str) -> None:
            raise ValueError(message)

        @fq.task()
        def add(a: int, b: int) -> int:
            return a + b
    """,
}


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLUXQUEUE_", "_FLUXQUEUE_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Project:
    """A directory with FluxQueue's example tasks, a SQLite broker URL and ways to run the CLI."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "q.db"
        # Short leases, so that a killed worker's task comes back within the test.
        self.url = f"sqlite:///{self.db}?visibility_timeout=2"
        self.env = _clean_env()
        self.workers: list[Worker] = []
        for name, text in PROJECT_FILES.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip())

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "fluxqueue.cli", *args]

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion (``-b`` is not added: pass it yourself)."""
        return subprocess.run(
            self.command(*args),
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run a command against this project's broker; it must succeed; its stdout."""
        done = self.run(*args, "-b", self.url, env=env)
        assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stderr}"
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def enqueue(self, name: str, *args: str) -> str:
        return self.ok("enqueue", name, *args).strip()

    def start(self, *args: str, env: dict[str, str] | None = None) -> Worker:
        """Start ``fluxqueue start ARGS -b URL`` in the background, logging to a file."""
        log = self.root / f"worker-{len(self.workers)}.log"
        handle = log.open("w")
        proc = subprocess.Popen(
            self.command("start", *args, "-b", self.url),
            cwd=self.root,
            env={**self.env, **(env or {})},
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
        )
        handle.close()
        worker = Worker(proc, log)
        self.workers.append(worker)
        return worker


class Worker:
    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc = proc
        self.log = log

    @property
    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, text: str, timeout: float = 15, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.output.count(text) < count:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {text!r} in the worker log after {timeout}s:\n{self.output}"
                )
            time.sleep(0.05)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"worker did not exit in {timeout}s:\n{self.output}") from None


@pytest.fixture
def project(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Project]:
    """A project on SQLite; on Redis instead with FLUXQUEUE_TEST_CLI_BROKER=redis."""
    proj = Project(tmp_path)
    if os.environ.get("FLUXQUEUE_TEST_CLI_BROKER") == "redis":
        proj.url = request.getfixturevalue("redis_url") + "?visibility_timeout=2"
    yield proj
    for worker in proj.workers:  # never leave a process behind, even when a test fails
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
            try:
                worker.proc.wait(10)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
