"""The defaults of the broker groups, proven on a backend that uses them.

The memory broker overrides every default natively; here a subclass puts the defaults
back (worker registry on state + claim, optional admin operations refused) and runs
those groups of the contract suite, plus what only a race can show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from fluxqueue.backends.base import BrokerStats, QueueAdmin, WorkerInfo, WorkerRegistry
from fluxqueue.backends.memory import MemoryBroker
from fluxqueue.errors import UnsupportedOperation
from fluxqueue.testing.contract import (
    MakeBroker,
    QueueAdminContract,
    WorkerRegistryContract,
    run,
)


class DefaultsBroker(MemoryBroker):
    """The memory broker with the groups' defaults instead of its own."""

    heartbeat = WorkerRegistry.heartbeat
    remove_worker = WorkerRegistry.remove_worker
    registered_workers = WorkerRegistry.registered_workers
    dead_letters = QueueAdmin.dead_letters
    remove_dead = QueueAdmin.remove_dead
    purge = QueueAdmin.purge
    promote_scheduled = QueueAdmin.promote_scheduled

    async def stats(self, queues: Sequence[str] | None = None) -> BrokerStats:
        counted = await super().stats(queues)
        return BrokerStats(counted.queues, await self.registered_workers())


class OneStore:
    @pytest.fixture
    def make_broker(self) -> MakeBroker:
        shared: list[DefaultsBroker] = []

        def make(visibility_timeout: float = 30.0) -> DefaultsBroker:
            if not shared:
                shared.append(DefaultsBroker(f"memory://?visibility_timeout={visibility_timeout}"))
            return shared[0]

        return make


class TestDefaultWorkerRegistry(OneStore, WorkerRegistryContract):
    pass


class TestDefaultQueueAdmin(OneStore, QueueAdminContract):
    unsupported = frozenset({"dead_letters", "remove_dead", "purge", "promote_scheduled"})


def test_workers_joining_at_once_are_all_listed() -> None:
    """The list of worker ids is changed under a claim: no join is lost to another."""
    broker = DefaultsBroker()

    async def scenario() -> None:
        workers = [WorkerInfo(f"w{i:02d}", "host", i, ["q"], 1, time.time()) for i in range(12)]
        await asyncio.gather(*(broker.heartbeat(w, 30) for w in workers))
        assert [w.id for w in await broker.registered_workers()] == [w.id for w in workers]
        await asyncio.gather(*(broker.remove_worker(w.id) for w in workers[::2]))
        assert [w.id for w in await broker.registered_workers()] == [w.id for w in workers[1::2]]

    run(scenario())


def test_a_registry_that_cannot_take_its_lock_says_so(caplog: pytest.LogCaptureFixture) -> None:
    broker = DefaultsBroker()

    async def scenario() -> None:
        assert await broker.claim("fluxqueue:workers", "someone-else", 60) == "someone-else"
        await broker.heartbeat(WorkerInfo("late", "host", 1, ["q"], 1, time.time()), 30)
        assert await broker.registered_workers() == []  # not listed: the join was skipped
        assert await broker.release("fluxqueue:workers", "someone-else")
        await broker.heartbeat(WorkerInfo("late", "host", 1, ["q"], 1, time.time()), 30)
        assert [w.id for w in await broker.registered_workers()] == ["late"]

    run(scenario())
    assert "could not update the worker list (its lock stayed taken)" in caplog.text


def test_unsupported_operation_names_the_backend_and_the_operation() -> None:
    with pytest.raises(UnsupportedOperation) as raised:
        run(DefaultsBroker().purge("q"))
    assert str(raised.value) == (
        "the DefaultsBroker broker does not support purging a queue; "
        "use a backend that does (memory, sqlite, redis) for this operation"
    )
