"""The broker contract: what every backend must do, as a pytest suite.

A backend proves itself by subclassing :class:`BrokerContract` and providing one fixture,
``make_broker``: a factory that returns a broker on a fresh, empty store for this test. Each
call within one test must return a new broker instance on the *same* store (two consumers,
or a producer and a consumer), honouring the ``visibility_timeout`` it is given::

    import pytest
    from fluxqueue.testing.contract import BrokerContract

    class TestMyBroker(BrokerContract):
        @pytest.fixture
        def make_broker(self, tmp_path):
            def make(visibility_timeout: float = 30.0):
                return MyBroker(f"mine://{tmp_path}/q?visibility_timeout={visibility_timeout}")
            return make

Tests are plain functions that drive the async API with ``asyncio.run``; no pytest plugin is
needed. Timing-dependent checks use generous margins so they pass on a loaded machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import pytest

from fluxqueue.backends.base import Broker, WorkerInfo
from fluxqueue.message import Delivery, Message
from fluxqueue.state import State, encode_state, initial_state

__all__ = ["BrokerContract", "MakeBroker"]

T = TypeVar("T")
MakeBroker = Callable[..., Broker]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def msg(queue: str = "q", priority: int = 2, eta: float | None = None, **kw: Any) -> Message:
    return Message(
        task="t",
        queue=queue,
        body=b"[[],{}]",
        content_type="application/json",
        priority=priority,
        eta=eta,
        **kw,
    )


async def put(broker: Broker, *messages: Message) -> None:
    await broker.enqueue(messages, 60)


async def lease_one(broker: Broker) -> tuple[Message, Delivery]:
    """Enqueue a fresh message on queue ``q`` and lease it."""
    message = msg()
    await put(broker, message)
    (delivery,) = await broker.fetch(["q"], 1, 1.0)
    return message, delivery


async def stored_state(broker: Broker, task_id: str) -> State:
    """The state the broker holds for ``task_id``, which must have one."""
    state = await broker.get_state(task_id)
    assert state is not None, f"the broker has no state for {task_id}"
    return state


def done(message: Message, status: str = "SUCCESS", result: bytes = b"") -> State:
    return encode_state(status, message, ttl=60, result=result)


class BrokerContract:
    """Subclass and provide the ``make_broker`` fixture (see the module docstring)."""

    @pytest.fixture
    def make_broker(self) -> MakeBroker:
        raise NotImplementedError("provide a make_broker fixture")

    @pytest.fixture
    def broker(self, make_broker: MakeBroker) -> Broker:
        return make_broker()

    # -- enqueue, fetch, ack ---------------------------------------------------------

    def test_enqueue_fetch_ack(self, broker: Broker) -> None:
        async def scenario() -> None:
            m = msg()
            await put(broker, m)
            state = await stored_state(broker, m.id)
            assert state.status == "PENDING"
            got = await broker.fetch(["q"], 10, 1.0)
            assert [d.task_id for d in got] == [m.id]
            assert Message.decode(got[0].data) == m
            assert got[0].queue == "q"
            await broker.ack(got[0], done(m, result=b"42"))
            state = await stored_state(broker, m.id)
            assert state.status == "SUCCESS"
            assert state.data.endswith(b"\n42")
            assert await broker.fetch(["q"], 10, 0) == []

        run(scenario())

    def test_ack_many_writes_started_states_then_acks(self, make_broker: MakeBroker) -> None:
        broker = make_broker(visibility_timeout=0.5)

        async def scenario() -> None:
            a, b, c = msg(), msg(), msg()
            await put(broker, a, b, c)
            got = {d.task_id: d for d in await broker.fetch(["q"], 10, 1.0)}
            assert set(got) == {a.id, b.id, c.id}
            running = encode_state("STARTED", c)
            await broker.ack_many(
                [(got[a.id], done(a, result=b"1")), (got[b.id], done(b, result=b"2"))],
                started=[(c.id, running)],
            )
            for m, result in ((a, b"\n1"), (b, b"\n2")):
                state = await stored_state(broker, m.id)
                assert state.status == "SUCCESS"
                assert state.data.endswith(result)
            state = await stored_state(broker, c.id)
            assert state.status == "STARTED"
            await broker.ack_many([])  # nothing to do is fine
            await asyncio.sleep(1.0)  # every lease expired: only the un-acked one comes back
            again = await broker.fetch(["q"], 10, 1.0)
            assert [d.task_id for d in again] == [c.id]

        run(scenario())

    def test_enqueue_sync_from_plain_threads(self, broker: Broker) -> None:
        import threading

        batches = [[msg() for _ in range(3)] for _ in range(3)]
        errors: list[BaseException] = []

        def produce(batch: list[Message]) -> None:
            try:
                broker.enqueue_sync(batch, 60)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=produce, args=(b,)) for b in batches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        broker.enqueue_sync([])

        async def scenario() -> list[str]:
            return [d.task_id for d in await broker.fetch(["q"], 20, 1.0)]

        assert sorted(run(scenario())) == sorted(m.id for b in batches for m in b)

    def test_fetch_returns_empty_after_timeout(self, broker: Broker) -> None:
        async def scenario() -> float:
            start = time.monotonic()
            assert await broker.fetch(["q"], 1, 0.3) == []
            return time.monotonic() - start

        elapsed = run(scenario())
        assert 0.2 <= elapsed < 3.0

    def test_fetch_with_zero_timeout_does_not_wait(self, broker: Broker) -> None:
        async def scenario() -> float:
            start = time.monotonic()
            assert await broker.fetch(["q"], 1, 0) == []
            return time.monotonic() - start

        assert run(scenario()) < 0.5

    def test_blocking_fetch_wakes_on_enqueue(self, make_broker: MakeBroker) -> None:
        consumer, producer = make_broker(), make_broker()

        async def scenario() -> float:
            m = msg()
            waiting = asyncio.ensure_future(consumer.fetch(["q"], 1, 10.0))
            await asyncio.sleep(0.2)
            start = time.monotonic()
            await put(producer, m)
            got = await waiting
            assert [d.task_id for d in got] == [m.id]
            return time.monotonic() - start

        assert run(scenario()) < 1.5

    def test_fetch_count_and_queue_isolation(self, broker: Broker) -> None:
        async def scenario() -> None:
            mine = [msg("a") for _ in range(5)]
            await put(broker, *mine, msg("b"))
            first = await broker.fetch(["a"], 3, 1.0)
            assert len(first) == 3
            rest = await broker.fetch(["a"], 10, 1.0)
            assert {d.task_id for d in first + rest} == {m.id for m in mine}
            assert await broker.fetch(["a"], 10, 0) == []
            assert len(await broker.fetch(["b"], 10, 1.0)) == 1

        run(scenario())

    def test_several_queues_in_one_fetch(self, broker: Broker) -> None:
        async def scenario() -> None:
            await put(broker, msg("a"), msg("b"))
            got = []
            for _ in range(5):
                got += await broker.fetch(["a", "b"], 10, 0.5)
                if len(got) == 2:
                    break
            assert sorted(d.queue for d in got) == ["a", "b"]

        run(scenario())

    def test_strict_priority_then_fifo(self, broker: Broker) -> None:
        async def scenario() -> None:
            low, normal1, crit, high, normal2 = (
                msg(priority=3),
                msg(),
                msg(priority=0),
                msg(priority=1),
                msg(),
            )
            for m in (low, normal1, crit, high, normal2):
                await put(broker, m)
            order = []
            for _ in range(5):
                (d,) = await broker.fetch(["q"], 1, 1.0)
                order.append(d.task_id)
            assert order == [crit.id, high.id, normal1.id, normal2.id, low.id]

        run(scenario())

    def test_bulk_enqueue(self, broker: Broker) -> None:
        async def scenario() -> None:
            batch = [msg() for _ in range(1000)]
            await put(broker, *batch)
            seen: list[str] = []
            while len(seen) < 1000:
                got = await broker.fetch(["q"], 100, 1.0)
                assert got, "messages went missing"
                seen += [d.task_id for d in got]
            assert sorted(seen) == sorted(m.id for m in batch)

        run(scenario())

    def test_enqueue_same_id_replaces(self, broker: Broker) -> None:
        async def scenario() -> None:
            first = msg(priority=3)
            second = replace(first, priority=0, body=b"[[2],{}]")
            await put(broker, first)
            await put(broker, second)
            got = await broker.fetch(["q"], 10, 1.0)
            assert [d.task_id for d in got] == [first.id]
            assert Message.decode(got[0].data) == second

        run(scenario())

    def test_a_waiting_task_has_its_initial_state(self, broker: Broker) -> None:
        async def scenario() -> None:
            now, later = msg(priority=1), msg(queue="other", eta=time.time() + 3600)
            await put(broker, now, later)
            for m, status in ((now, "PENDING"), (later, "SCHEDULED")):
                state = await stored_state(broker, m.id)
                assert (state.status, state.data) == (status, initial_state(m, 60).data)

        run(scenario())

    def test_enqueue_again_starts_the_state_over(self, broker: Broker) -> None:
        async def scenario() -> None:
            m, d = await lease_one(broker)
            await broker.ack(d, done(m, "FAILURE"))
            again = replace(m, body=b"[[3],{}]")
            await put(broker, again)
            state = await stored_state(broker, m.id)
            assert (state.status, state.data) == ("PENDING", initial_state(again, 60).data)
            aborted = msg()
            await put(broker, aborted)
            assert await broker.abort(aborted.id) == "aborted"
            await put(broker, aborted)
            state = await stored_state(broker, aborted.id)
            assert state.status == "PENDING"
            assert [x.task_id for x in await broker.fetch(["q"], 10, 1.0)] == [m.id, aborted.id]

        run(scenario())

    # -- delays ----------------------------------------------------------------------

    def test_delayed_message_waits_for_its_eta(self, broker: Broker) -> None:
        async def scenario() -> float:
            m = msg(eta=time.time() + 0.5)
            await put(broker, m)
            state = await stored_state(broker, m.id)
            assert state.status == "SCHEDULED"
            assert await broker.fetch(["q"], 1, 0) == []
            start = time.monotonic()
            got = await broker.fetch(["q"], 1, 5.0)
            assert [d.task_id for d in got] == [m.id]
            return time.monotonic() - start

        assert 0.2 <= run(scenario()) < 3.0

    def test_due_message_is_delivered_by_a_later_consumer(self, make_broker: MakeBroker) -> None:
        m = msg(eta=time.time() + 0.3)
        run(put(make_broker(), m))
        time.sleep(0.5)  # nobody is fetching when it comes due
        got = run(make_broker().fetch(["q"], 1, 1.0))
        assert [d.task_id for d in got] == [m.id]

    def test_promote_scheduled(self, broker: Broker) -> None:
        async def scenario() -> None:
            m = msg(eta=time.time() + 3600)
            await put(broker, m, msg("other", eta=time.time() + 3600))
            assert await broker.promote_scheduled("q") == 1
            assert [d.task_id for d in await broker.fetch(["q"], 5, 1.0)] == [m.id]
            assert await broker.promote_scheduled() == 1

        run(scenario())

    # -- leases ----------------------------------------------------------------------

    def test_expired_lease_is_delivered_again(self, make_broker: MakeBroker) -> None:
        first, second = make_broker(visibility_timeout=0.5), make_broker(visibility_timeout=0.5)

        async def scenario() -> None:
            m = msg()
            await put(first, m)
            (_lease,) = await first.fetch(["q"], 1, 1.0)
            assert await second.fetch(["q"], 1, 0) == []  # leased, not visible
            got = await second.fetch(["q"], 1, 5.0)  # the "dead" consumer never acks
            assert [d.task_id for d in got] == [m.id]
            await second.ack(got[0], done(m))
            assert await first.fetch(["q"], 1, 1.0) == []

        run(scenario())

    def test_extend_keeps_the_lease(self, make_broker: MakeBroker) -> None:
        owner, other = make_broker(visibility_timeout=0.6), make_broker(visibility_timeout=0.6)

        async def scenario() -> None:
            await put(owner, msg())
            (d,) = await owner.fetch(["q"], 1, 1.0)
            for _ in range(8):
                await asyncio.sleep(0.2)
                await owner.extend([d])
                assert await other.fetch(["q"], 1, 0) == []
            await owner.ack(d, State("SUCCESS", b""))

        run(scenario())

    def test_requeue_for_retry(self, broker: Broker) -> None:
        async def scenario() -> None:
            m, d = await lease_one(broker)
            retry = replace(m, attempt=1, eta=time.time() + 0.3)
            await broker.requeue(d, retry, encode_state("RETRYING", retry, ttl=60))
            state = await stored_state(broker, m.id)
            assert state.status == "RETRYING"
            assert await broker.fetch(["q"], 1, 0) == []
            (again,) = await broker.fetch(["q"], 1, 5.0)
            assert Message.decode(again.data).attempt == 1

        run(scenario())

    def test_requeue_without_delay_is_ready_at_once(self, broker: Broker) -> None:
        async def scenario() -> None:
            m, d = await lease_one(broker)
            await broker.requeue(d, m, initial_state(m, 60))
            assert [x.task_id for x in await broker.fetch(["q"], 1, 1.0)] == [m.id]

        run(scenario())

    def test_two_consumers_share_without_duplicates(self, make_broker: MakeBroker) -> None:
        producer = make_broker()
        consumers = [make_broker(), make_broker()]

        async def consume(broker: Broker, seen: list[str]) -> None:
            idle = 0
            while idle < 3:
                got = await broker.fetch(["q"], 7, 0.2)
                idle = 0 if got else idle + 1
                for d in got:
                    seen.append(d.task_id)
                    await broker.ack(d, State("SUCCESS", b""))

        async def scenario() -> None:
            batch = [msg() for _ in range(300)]
            await put(producer, *batch)
            seen: list[str] = []
            await asyncio.gather(*(consume(c, seen) for c in consumers))
            assert sorted(seen) == sorted(m.id for m in batch)

        run(scenario())

    # -- state, results, streams -----------------------------------------------------

    def test_state_expires_after_its_ttl(self, broker: Broker) -> None:
        async def scenario() -> None:
            await broker.set_state("x", State("SUCCESS", b"{}\n", ttl=0.3))
            state = await stored_state(broker, "x")
            assert state.status == "SUCCESS"
            await asyncio.sleep(1.2)
            assert await broker.get_state("x") is None
            assert await broker.get_state("never-seen") is None

        run(scenario())

    def test_wait_state(self, make_broker: MakeBroker) -> None:
        waiter, writer = make_broker(), make_broker()

        async def scenario() -> None:
            task = asyncio.ensure_future(waiter.wait_state("w", {"SUCCESS"}, 5.0))
            await asyncio.sleep(0.1)
            await writer.set_state("w", State("SUCCESS", b"", 60))
            state = await task
            assert state is not None and state.status == "SUCCESS"
            late = await waiter.wait_state("none", {"SUCCESS"}, 0.2)
            assert late is None

        run(scenario())

    def test_outputs_in_order(self, broker: Broker) -> None:
        async def scenario() -> None:
            for item in (b"a", b"b", b"c"):
                await broker.add_output("s", item, 60)
            assert await broker.get_outputs("s") == [b"a", b"b", b"c"]
            assert await broker.get_outputs("s", 2) == [b"c"]
            assert await broker.get_outputs("s", 3) == []
            assert await broker.get_outputs("none") == []

        run(scenario())

    # -- abort -----------------------------------------------------------------------

    def test_abort_waiting_and_delayed(self, broker: Broker) -> None:
        async def scenario() -> None:
            ready, later = msg(), msg(eta=time.time() + 3600)
            await put(broker, ready, later)
            assert await broker.abort(ready.id) == "aborted"
            assert await broker.abort(later.id) == "aborted"
            for m in (ready, later):
                state = await stored_state(broker, m.id)
                assert state.status == "ABORTED"
            assert await broker.promote_scheduled() == 0
            assert await broker.fetch(["q"], 10, 0) == []

        run(scenario())

    def test_abort_keeps_the_state_data(self, broker: Broker) -> None:
        async def scenario() -> None:
            m = msg()
            await put(broker, m)
            before = await broker.get_state(m.id)
            assert await broker.abort(m.id) == "aborted"
            after = await broker.get_state(m.id)
            assert before is not None and after is not None
            assert (after.status, after.data) == ("ABORTED", before.data)

        run(scenario())

    def test_abort_running_is_a_request(self, broker: Broker) -> None:
        async def scenario() -> None:
            m, other = msg(), msg()
            await put(broker, m, other)
            got = await broker.fetch(["q"], 2, 1.0)
            assert len(got) == 2
            assert await broker.abort(m.id) == "requested"
            assert await broker.abort_requested([d.task_id for d in got]) == {m.id}
            for d in got:
                await broker.ack(d, State("ABORTED", b""))
            assert await broker.abort(m.id) == "missing"
            assert await broker.abort("never-seen") == "missing"

        run(scenario())

    # -- dead letters ----------------------------------------------------------------

    def test_dead_letters(self, broker: Broker) -> None:
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
            assert await broker.remove_dead("q", [m1.id]) == 1
            assert [x.task_id for x in await broker.dead_letters("q")] == [m2.id]
            assert await broker.remove_dead("q") == 1
            assert await broker.dead_letters("q") == []
            assert await broker.fetch(["q"], 10, 0) == []

        run(scenario())

    def test_dead_letters_oldest_first_with_limit(self, broker: Broker) -> None:
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

    # -- administration --------------------------------------------------------------

    def test_stats(self, broker: Broker) -> None:
        async def scenario() -> None:
            await put(broker, msg(priority=0), msg(), msg(), msg(eta=time.time() + 3600))
            await put(broker, msg(), msg("other"))
            (running,) = await broker.fetch(["q"], 1, 1.0)  # the CRITICAL one
            (dead,) = await broker.fetch(["q"], 1, 1.0)
            await broker.dead_letter(dead, "boom", State("FAILURE", b""))
            worker = WorkerInfo("w1", "host", 1, ["q"], 4, time.time())
            await broker.heartbeat(worker, ttl=30)
            stats = await broker.stats(["q"])
            (q,) = stats.queues
            assert q.name == "q"
            assert q.ready == {2: 2}
            assert (q.scheduled, q.running, q.dead) == (1, 1, 1)
            assert [w.id for w in stats.workers] == ["w1"]
            everything = await broker.stats()
            assert {"q", "other"} <= {s.name for s in everything.queues}
            await broker.remove_worker("w1")
            assert (await broker.stats(["q"])).workers == []
            await broker.ack(running, State("SUCCESS", b""))

        run(scenario())

    def test_stats_count_ready_per_priority(self, broker: Broker) -> None:
        async def scenario() -> None:
            await put(broker, msg(priority=0), msg(priority=3), msg(priority=3), msg(priority=1))
            (q,) = (await broker.stats(["q"])).queues
            assert q.ready == {0: 1, 1: 1, 3: 2}
            assert q.total_ready == 4

        run(scenario())

    def test_purge(self, broker: Broker) -> None:
        async def scenario() -> None:
            await put(broker, msg(), msg(), msg(eta=time.time() + 3600), msg("keep"))
            assert await broker.purge("q") == 3
            assert await broker.fetch(["q"], 10, 0) == []
            assert await broker.promote_scheduled("q") == 0
            assert len(await broker.fetch(["keep"], 10, 1.0)) == 1

        run(scenario())

    # -- lifecycle -------------------------------------------------------------------

    def test_usable_from_several_event_loops_and_after_close(self, broker: Broker) -> None:
        m1, m2 = msg(), msg()
        run(put(broker, m1))
        got: list[Delivery] = run(broker.fetch(["q"], 1, 1.0))
        assert [d.task_id for d in got] == [m1.id]
        run(broker.ack(got[0], done(m1)))
        run(broker.close())
        run(put(broker, m2))
        assert [d.task_id for d in run(broker.fetch(["q"], 1, 1.0))] == [m2.id]
        run(broker.close())
