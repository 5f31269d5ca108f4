"""Every example in examples/ runs (against memory://, the quickstart on its default
SQLite file) and prints what the docs show.

The docs pages duplicate these files; `test_docs_match_examples` checks that each one is
included verbatim in some page, so the two cannot drift apart.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs"

# script -> a line its output must contain
EXPECTED = {
    "quickstart_memory.py": "add -> 5",
    "quickstart.py": "worker stopped with exit code 0",
    "retries.py": "flaky: succeeded on attempt 3 | attempts: 3",
    "streaming.py": "item: {'line': 3, 'words': 3}",
    "async_tasks.py": "profile: {'id': 7, 'name': 'user-7'}",
    "results.py": "bulk: 1000 tasks, sum = 499500",
    "serializers.py": "argument 'when' of task 'schedule_report' is a datetime",
    "context_tasks.py": "resize -> 42@640px",
    "plugin_hooks.py": "'succeeded:divide': 1",
    "tiny_broker.py": "tiny broker: add(2, 3) -> 5",
}
PYTEST_EXAMPLES = sorted(p.name for p in EXAMPLES.glob("*_test.py"))
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name not in PYTEST_EXAMPLES)


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_every_script_has_an_expectation() -> None:
    assert sorted(EXPECTED) == SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_script(name: str) -> None:
    proc = run(str(EXAMPLES / name))
    assert proc.returncode == 0, proc.stderr
    assert EXPECTED[name] in proc.stdout, proc.stdout


@pytest.mark.parametrize("name", PYTEST_EXAMPLES)
def test_example_test_file(name: str) -> None:
    # the whole broker contract suite runs in there: give a loaded machine time
    proc = run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES / name), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" in proc.stdout


@pytest.mark.parametrize("name", SCRIPTS + PYTEST_EXAMPLES)
def test_docs_match_examples(name: str) -> None:
    code = (EXAMPLES / name).read_text()
    pages = [p.read_text() for p in DOCS.rglob("*.md")]
    assert any(code in page for page in pages), f"no page in docs/ includes {name} verbatim"
