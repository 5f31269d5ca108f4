"""The queue admin group (stats; optional dead letters, purge, promote) and the worker
registry group."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import pytest

from fluxqueue.backends.base import Broker, WorkerInfo
from fluxqueue.errors import UnsupportedOperation
from fluxqueue.message import Message
from fluxqueue.state import State
from fluxqueue.testing.contract.support import ContractBase, done, msg, put, run, stored_state

__all__ = ["QueueAdminContract", "WorkerRegistryContract"]


class QueueAdminContract(ContractBase):
    """stats; dead_letters, remove_dead, purge, promote_scheduled unless ``unsupported``."""

    def _offers(self, broker: Broker, operation: str, call: Awaitable[Any]) -> bool:
        """Whether the backend offers ``operation``; if it is declared unsupported, check
        that it says so clearly (then the behaviour test stops there)."""
        if operation not in self.unsupported:
            if asyncio.iscoroutine(call):
                call.close()
            return True
        with pytest.raises(UnsupportedOperation, match=type(broker).__name__):
            run(call)  # type: ignore[arg-type]
        return False

    # -- counting --------------------------------------------------------------------

    def test_stats(self, broker: Broker) -> None:
        async def scenario() -> None:
            await put(broker, msg(priority=0), msg(), msg(), msg(eta=time.time() + 3600))
            await put(broker, msg(), msg("other"))
            (running,) = await broker.fetch(["q"], 1, 1.0)  # the CRITICAL one
            (dead,) = await broker.fetch(["q"], 1, 1.0)
            await broker.dead_letter(dead, "boom", State("FAILURE", b""))
            stats = await broker.stats(["q"])
            (q,) = stats.queues
            assert q.name == "q"
            assert q.ready == {2: 2}
            assert (q.scheduled, q.running, q.dead) == (1, 1, 1)
            everything = await broker.stats()
            assert {"q", "other"} <= {s.name for s in everything.queues}
            await broker.ack(running, State("SUCCESS", b""))

        run(scenario())

    def test_stats_count_ready_per_priority(self, broker: Broker) -> None:
        async def scenario() -> None:
            await put(broker, msg(priority=0), msg(priority=3), msg(priority=3), msg(priority=1))
            (q,) = (await broker.stats(["q"])).queues
            assert q.ready == {0: 1, 1: 1, 3: 2}
            assert q.total_ready == 4

        run(scenario())

    # -- dead letters ----------------------------------------------------------------

    def test_dead_letters(self, broker: Broker) -> None:
        if not self._offers(broker, "dead_letters", broker.dead_letters("q")):
            return

        async def scenario() -> None:
            m1, m2 = msg(), msg()
            await put(broker, m1, m2)
            for d in await broker.fetch(["q"], 2, 1.0):
                await broker.dead_letter(d, "ValueError: boom", done(m1, "FAILURE"))
            letters = await broker.dead_letters("q")
            assert {x.task_id for x in letters} == {m1.id, m2.id}
            assert all(x.reason == "ValueError: boom" and x.queue == "q" for x in letters)
            assert Message.decode(next(x for x in letters if x.task_id == m1.id).data) == m1
            state = await stored_state(broker, m1.id)
            assert state.status == "FAILURE"
            assert await broker.dead_letters("other") == []
            assert await broker.fetch(["q"], 10, 0) == []

        run(scenario())

    def test_dead_letters_oldest_first_with_limit(self, broker: Broker) -> None:
        if not self._offers(broker, "dead_letters", broker.dead_letters("q")):
            return

        async def scenario() -> None:
            batch = [msg() for _ in range(5)]
            await put(broker, *batch)
            order = []
            for _ in batch:
                (d,) = await broker.fetch(["q"], 1, 1.0)
                await broker.dead_letter(d, "boom", State("FAILURE", b"", 60))
                order.append(d.task_id)
            letters = await broker.dead_letters("q", limit=3)
            assert [x.task_id for x in letters] == order[:3]
            assert all(abs(x.failed_at - time.time()) < 60 for x in letters)

        run(scenario())

    def test_remove_dead(self, broker: Broker) -> None:
        if not self._offers(broker, "remove_dead", broker.remove_dead("q")):
            return

        async def scenario() -> None:
            m1, m2 = msg(), msg()
            await put(broker, m1, m2)
            for d in await broker.fetch(["q"], 2, 1.0):
                await broker.dead_letter(d, "boom", State("FAILURE", b"", 60))
            assert await broker.remove_dead("q", [m1.id, "never-seen"]) == 1
            assert (await broker.stats(["q"])).queues[0].dead == 1
            assert await broker.remove_dead("q", []) == 0
            assert await broker.remove_dead("q") == 1
            assert (await broker.stats(["q"])).queues[0].dead == 0

        run(scenario())

    # -- purge and promote -----------------------------------------------------------

    def test_purge(self, broker: Broker) -> None:
        if not self._offers(broker, "purge", broker.purge("q")):
            return

        async def scenario() -> None:
            later = msg(eta=time.time() + 0.3)
            await put(broker, msg(), msg(), later, msg("keep"))
            assert await broker.purge("q") == 3
            assert await broker.fetch(["q"], 10, 1.0) == []  # the delayed one too
            assert len(await broker.fetch(["keep"], 10, 1.0)) == 1

        run(scenario())

    def test_promote_scheduled(self, broker: Broker) -> None:
        if not self._offers(broker, "promote_scheduled", broker.promote_scheduled("q")):
            return

        async def scenario() -> None:
            m = msg(eta=time.time() + 3600)
            await put(broker, m, msg("other", eta=time.time() + 3600))
            assert await broker.promote_scheduled("q") == 1
            assert [d.task_id for d in await broker.fetch(["q"], 5, 1.0)] == [m.id]
            assert await broker.promote_scheduled() == 1
            assert await broker.promote_scheduled() == 0

        run(scenario())


class WorkerRegistryContract(ContractBase):
    """heartbeat, remove_worker, registered_workers, and the workers in ``stats``."""

    def test_heartbeat_lists_a_worker_until_it_leaves(self, broker: Broker) -> None:
        async def scenario() -> None:
            w1 = WorkerInfo("w1", "host", 1, ["q"], 4, time.time())
            w2 = WorkerInfo("w2", "host", 2, ["q", "other"], 1, time.time())
            await broker.heartbeat(w1, ttl=30)
            await broker.heartbeat(w2, ttl=30)
            await broker.heartbeat(w1, ttl=30)  # beats again: still listed once
            # Listed once each; the order of workers is not part of the contract.
            assert sorted(w.id for w in (await broker.stats(["q"])).workers) == ["w1", "w2"]
            listed = sorted(await broker.registered_workers(), key=lambda w: w.id)
            assert [(w.id, w.queues, w.concurrency) for w in listed] == [
                ("w1", ["q"], 4),
                ("w2", ["q", "other"], 1),
            ]
            assert all(w.last_seen > 0 for w in listed)
            await broker.remove_worker("w1")
            assert [w.id for w in (await broker.stats(["q"])).workers] == ["w2"]
            await broker.remove_worker("never-seen")

        run(scenario())

    def test_a_silent_worker_drops_out_after_its_ttl(self, broker: Broker) -> None:
        async def scenario() -> None:
            await broker.heartbeat(WorkerInfo("gone", "host", 1, ["q"], 1, time.time()), 0.3)
            await broker.heartbeat(WorkerInfo("alive", "host", 2, ["q"], 1, time.time()), 30)
            await asyncio.sleep(0.8)
            assert [w.id for w in await broker.registered_workers()] == ["alive"]
            assert [w.id for w in (await broker.stats(["q"])).workers] == ["alive"]

        run(scenario())
