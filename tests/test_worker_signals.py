"""``fq.run_worker()`` serves until SIGTERM/SIGINT and stops gracefully (a real process)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import asyncio, sys
from fluxqueue import FluxQueue

fq = FluxQueue("memory://")

@fq.task
async def work(seconds: float) -> str:
    print("started", flush=True)
    await asyncio.sleep(seconds)
    return "finished"

handle = work.enqueue(float(sys.argv[1]))
fq.run_worker(shutdown_timeout=float(sys.argv[2]))
print("status", handle.status().value, flush=True)
"""


def start(tmp_path: Path, seconds: float, shutdown_timeout: float) -> subprocess.Popen[str]:
    script = tmp_path / "serve.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(seconds), str(shutdown_timeout)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    return proc


def stop(proc: subprocess.Popen[str], *signals: int) -> tuple[str, str]:
    """Send ``signals`` 0.3 s apart; the worker must then exit 0. Its stdout and stderr."""
    for i, sig in enumerate(signals):
        if i:
            time.sleep(0.3)
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return out, err


def test_sigterm_lets_the_running_task_finish_and_exits_0(tmp_path: Path) -> None:
    out, _ = stop(start(tmp_path, seconds=0.5, shutdown_timeout=10), signal.SIGTERM)
    assert "status SUCCESS" in out


def test_a_second_sigint_stops_at_once_and_hands_the_task_back(tmp_path: Path) -> None:
    proc = start(tmp_path, seconds=60, shutdown_timeout=60)
    started = time.monotonic()
    out, err = stop(proc, signal.SIGINT, signal.SIGINT)
    assert time.monotonic() - started < 10
    assert "status PENDING" in out  # back in its queue for another worker
    assert "second interrupt: stopping now" in err


def test_shutdown_timeout_hands_back_what_did_not_finish(tmp_path: Path) -> None:
    out, _ = stop(start(tmp_path, seconds=60, shutdown_timeout=0.5), signal.SIGTERM)
    assert "status PENDING" in out
