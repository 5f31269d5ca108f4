"""Fault tests with real worker processes, real signals and a real redis-server.

They run the scenarios of ``benchmarks/reliability.py`` small enough for CI; the soak runs
them large (see docs/reliability.md). No test asserts a time, except generous bounds that
show nothing hung.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.reliability import (
    Outcome,
    redis_outage_run,
    redis_restart_run,
    sigkill_run,
    sigterm_run,
)
from tests.redis_server import RedisServer

#: The CI outage; the documented soak uses 30 s.
OUTAGE = float(os.environ.get("FLUXQUEUE_TEST_OUTAGE", "5"))


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    """A private redis-server with AOF on, as in production, that a test may restart."""
    with RedisServer(appendonly=True) as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'faults.db'}?visibility_timeout=2"
        return
    with RedisServer(appendonly=True) as server:
        yield server.url + "?visibility_timeout=2"


def backend(url: str) -> str:
    return url.split(":", 1)[0]


def assert_nothing_lost(outcome: Outcome) -> None:
    assert outcome.sent > 0
    assert outcome.lost == 0, outcome
    assert outcome.completed == outcome.sent


def test_sigkilled_workers_lose_nothing(url: str, tmp_path: Path) -> None:
    outcome = sigkill_run(url, tmp_path, backend(url), tasks=1000, kills=3, concurrency=4)
    assert_nothing_lost(outcome)
    assert len(outcome.kills) == 3
    # The killed workers' tasks ran again, in another process, once their leases expired.
    assert outcome.started_twice >= sum(k.in_flight for k in outcome.kills) > 0
    for kill in outcome.kills:
        if kill.in_flight:
            assert kill.recovery is not None
            assert outcome.visibility_timeout * 0.5 < kill.recovery < 30


def test_redis_restart_mid_run(aof_redis: RedisServer, tmp_path: Path) -> None:
    outcome = redis_restart_run(aof_redis, tmp_path, tasks=1000, restarts=1)
    assert_nothing_lost(outcome)
    assert outcome.notes["worker_exits"] == 0  # they reconnected by themselves


@pytest.mark.parametrize("freeze", [False, True], ids=["stopped", "frozen"])
def test_redis_outage(aof_redis: RedisServer, tmp_path: Path, freeze: bool) -> None:
    outcome = redis_outage_run(
        aof_redis, tmp_path, tasks=600, outage=OUTAGE, producer_timeout=1.0, freeze=freeze
    )
    assert_nothing_lost(outcome)
    notes = outcome.notes
    assert notes["producer_attempts"] >= 2
    assert notes["producer_errors"] == ["BrokerConnectionError"]
    # Bounded by the producer's socket timeouts (1 s each; a connect and a reply), not by
    # the outage: generous, but far below it when the server is frozen.
    assert notes["producer_slowest_error_s"] < 4.5
    assert notes["worker_exits"] == 0


@pytest.mark.parametrize(
    ("task_seconds", "shutdown_timeout", "status"),
    [(1.0, 10.0, "SUCCESS"), (4.0, 0.5, "PENDING")],
    ids=["finishes", "handed-back"],
)
def test_sigterm_during_a_long_task(
    url: str, tmp_path: Path, task_seconds: float, shutdown_timeout: float, status: str
) -> None:
    outcome = sigterm_run(
        url, tmp_path, backend(url), task_seconds=task_seconds, shutdown_timeout=shutdown_timeout
    )
    assert outcome.notes["exit_code"] == 0
    assert outcome.notes["status_after_exit"] == status
    assert outcome.notes["exit_after_s"] < shutdown_timeout + 20
    if status == "SUCCESS":
        assert_nothing_lost(outcome)
        assert outcome.started_twice == 0
    else:  # the next worker runs it to the end
        assert outcome.completed == 1
