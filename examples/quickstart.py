"""The quickstart, end to end on the embedded default broker (SQLite, no server).

1. starts a worker process: ``fluxqueue start --tasks-module-path tasks``
2. enqueues tasks from this (another) process
3. waits for their results, then stops the worker with SIGTERM

Run it: scripts/quickstart   (or: python examples/quickstart.py)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "quickstart"


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="fluxqueue-quickstart-"))
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    env.pop("FLUXQUEUE_BROKER_URL", None)  # use the default: sqlite:///fluxqueue.db here
    os.chdir(workdir)
    sys.path.insert(0, str(HERE))
    cli = [sys.executable, "-m", "fluxqueue.cli"]
    worker = subprocess.Popen([*cli, "start", "--tasks-module-path", "tasks"], env=env)
    try:
        from tasks import resize_image, send_welcome_email

        emails = [send_welcome_email(i, f"user{i}@example.com") for i in range(3)]
        image = resize_image.enqueue(7, width=640)
        for handle in [*emails, image]:
            print(f"{handle.id[:8]}  {handle.result(timeout=30)}")
        print(f"database: {workdir / 'fluxqueue.db'}")
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"worker stopped with exit code {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
