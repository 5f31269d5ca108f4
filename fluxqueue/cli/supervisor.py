"""``--workers N``: one supervisor process running N worker processes.

Each worker is a full ``fluxqueue start`` process of its own (started with ``-w 1``), so it
imports the tasks modules and opens broker connections itself: nothing is inherited across
a fork. Children run in their own session, so a Ctrl-C in the terminal reaches only the
supervisor, which forwards each SIGTERM and SIGINT once (a second SIGINT therefore still
means "stop now"). A child that exits without being asked to is started again after a short,
growing delay. A child notices when its supervisor is gone and stops gracefully.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

__all__ = ["SUPERVISOR_PID_ENV", "WORKER_INDEX_ENV", "Supervisor", "describe_exit"]

log = logging.getLogger("fluxqueue.supervisor")

#: Set in a child's environment: the supervisor's pid, and the child's number (1..N).
SUPERVISOR_PID_ENV = "_FLUXQUEUE_SUPERVISOR_PID"
WORKER_INDEX_ENV = "_FLUXQUEUE_WORKER_INDEX"

#: Restart delays grow from FIRST to MAX; a child that ran STABLE seconds resets them.
RESTART_DELAY_FIRST = 0.5
RESTART_DELAY_MAX = 30.0
STABLE_AFTER = 30.0
#: Beyond the shutdown timeout, how long children get before they are killed.
KILL_GRACE = 15.0


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


@dataclass
class _Slot:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    done: bool = False


class Supervisor:
    """Start ``count`` processes running ``argv`` and keep them running until stopped."""

    def __init__(
        self,
        argv: Sequence[str],
        count: int,
        *,
        env: dict[str, str] | None = None,
        burst: bool = False,
        shutdown_timeout: float = 30.0,
        poll_interval: float = 0.1,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(os.environ if env is None else env)
        self.slots = [_Slot(i + 1) for i in range(count)]
        self.burst = burst
        self.shutdown_timeout = shutdown_timeout
        self.poll_interval = poll_interval
        self.stopping = False
        self.failed = False
        self._kill_at: float | None = None

    # -- signals ---------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not self.stopping:
            log.info("%s received: stopping %d worker process(es)", name, len(self._live()))
            self.stopping = True
            self._kill_at = time.monotonic() + self.shutdown_timeout + KILL_GRACE
        else:
            log.warning("%s received again: forwarding it", name)
        for slot in self._live():
            assert slot.proc is not None
            try:
                slot.proc.send_signal(signum)
            except ProcessLookupError:
                pass

    # -- children --------------------------------------------------------------------

    def _live(self) -> list[_Slot]:
        return [s for s in self.slots if s.proc is not None and s.proc.returncode is None]

    def _spawn(self, slot: _Slot) -> None:
        env = {
            **self.env,
            SUPERVISOR_PID_ENV: str(os.getpid()),
            WORKER_INDEX_ENV: str(slot.index),
        }
        slot.proc = subprocess.Popen(self.argv, env=env, start_new_session=True)
        slot.started = time.monotonic()
        slot.restart_at = None
        log.info("worker process %d started (pid %d)", slot.index, slot.proc.pid)

    def _exited(self, slot: _Slot, code: int) -> None:
        assert slot.proc is not None
        pid, slot.proc = slot.proc.pid, None
        ran = time.monotonic() - slot.started
        if self.stopping or (self.burst and code == 0):
            slot.done = True
            if code != 0:
                self.failed = True
            log_at = logging.INFO if code == 0 else logging.WARNING
            log.log(log_at, "worker process %d (pid %d) %s", slot.index, pid, describe_exit(code))
            return
        slot.failures = 1 if ran >= STABLE_AFTER else slot.failures + 1
        delay = min(RESTART_DELAY_FIRST * 2 ** (slot.failures - 1), RESTART_DELAY_MAX)
        slot.restart_at = time.monotonic() + delay
        log.warning(
            "worker process %d (pid %d) %s after %.1fs; restarting it in %.1fs",
            slot.index, pid, describe_exit(code), ran, delay,
        )  # fmt: skip

    # -- the loop --------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until every child has stopped; 0 after a clean stop, else 1."""
        handled = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            for slot in self.slots:
                self._spawn(slot)
            while not all(slot.done for slot in self.slots):
                self._step()
                time.sleep(self.poll_interval)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("supervisor stopped")
        return 1 if self.failed else 0

    def _step(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.proc is not None:
                code = slot.proc.poll()
                if code is not None:
                    self._exited(slot, code)
            elif not slot.done and slot.restart_at is not None:
                if self.stopping:
                    slot.done = True
                elif now >= slot.restart_at:
                    self._spawn(slot)
        if self.stopping and self._kill_at is not None and now >= self._kill_at:
            for slot in self._live():
                assert slot.proc is not None
                log.error(
                    "worker process %d (pid %d) did not stop in time: killing it",
                    slot.index, slot.proc.pid,
                )  # fmt: skip
                slot.proc.kill()
            self.failed = True
            self._kill_at = None
