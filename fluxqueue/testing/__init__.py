"""Helpers for testing code that uses fluxqueue, without a server.

    fq = FluxQueue("memory://")
    handle = my_task(1, 2)
    run_all(fq)                      # runs it, its retries and delayed tasks, without sleeping
    assert handle.result() == 3
    assert dead_letters(fq) == []

The broker contract suite for backend authors is :mod:`fluxqueue.testing.contract`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fluxqueue._bridge import run_sync
from fluxqueue.admin import DeadLetterInfo
from fluxqueue.app import FluxQueue

__all__ = ["dead_letters", "run_all", "run_scheduled"]


def run_all(
    app: FluxQueue,
    *,
    queues: Sequence[str] | None = None,
    concurrency: int | None = None,
    max_rounds: int = 1000,
    **worker_options: Any,
) -> int:
    """Run every task until nothing is left: ready ones, delayed ones and retries.

    Delayed messages are made due at once instead of waiting for their eta, so a test with
    ``backoff`` or ``delay=`` does not sleep. Returns how many rounds it took; raises
    ``RuntimeError`` if tasks keep scheduling tasks for more than ``max_rounds`` rounds.
    """
    for round_number in range(1, max_rounds + 1):
        app.run_worker(burst=True, queues=queues, concurrency=concurrency, **worker_options)
        targets: Sequence[str | None] = list(queues) if queues else [None]
        promoted = sum(run_sync(app.broker.promote_scheduled(q)) for q in targets)
        if not promoted:
            return round_number
    raise RuntimeError(f"tasks were still being scheduled after {max_rounds} rounds")


def run_scheduled(app: FluxQueue, queue: str | None = None) -> int:
    """Make delayed messages due now (without running them); return how many."""
    return run_sync(app.broker.promote_scheduled(queue))


def dead_letters(app: FluxQueue, queue: str = "default") -> list[DeadLetterInfo]:
    """The queue's dead letters: task id, task name, attempts, reason."""
    return run_sync(app.admin.dead_letters(queue))
