"""Type checkers see a task's real parameters and its handle's result type."""

import subprocess
import sys
from pathlib import Path

SAMPLE = """
from fluxqueue import FluxQueue, TaskHandle

fq = FluxQueue("memory://")

@fq.task(name="send-welcome-email", queue="emails")
def send_welcome_email(user_id: int, email: str) -> bool:
    return True

@fq.task
async def notify(user_id: int) -> str:
    return "ok"

async def caller() -> None:
    handle: TaskHandle[str] = await notify(1)
    text: str = await handle.aresult()

ok: TaskHandle[bool] = send_welcome_email(1, "a@b.c")
flag: bool = ok.result()
same: TaskHandle[bool] = send_welcome_email.options(delay=5).enqueue(2, "x")
plain: bool = send_welcome_email.fn(3, "y")

send_welcome_email(1, 2)                  # error expected: int where str is wanted
send_welcome_email("1", "a@b.c")          # error expected: str where int is wanted
send_welcome_email.enqueue(1)             # error expected: missing argument
wrong: TaskHandle[int] = ok               # error expected: handle of the wrong result type
"""


def test_mypy_reports_wrong_argument_types(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(sample)],
        capture_output=True,
        text=True,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    lines = sorted({int(line.split(":")[1]) for line in errors})
    expected = [n for n, line in enumerate(SAMPLE.splitlines(), 1) if "error expected" in line]
    assert len(expected) == 4
    assert lines == expected, result.stdout
    assert 'Argument 2 to "__call__" of "SyncTask" has incompatible type "int"; expected "str"' in (
        result.stdout
    )
