"""The transport group: enqueue, fetch, leases, ack, requeue, dead letters, lifecycle.

Each end of a lease writes a state, so these tests read states back with ``get_state``:
prove the state store group first.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace

from fluxqueue.backends.base import Broker
from fluxqueue.message import Delivery, Message
from fluxqueue.state import State, encode_state, initial_state
from fluxqueue.testing.contract.support import (
    ContractBase,
    MakeBroker,
    done,
    lease_one,
    msg,
    put,
    run,
    stored_state,
)

__all__ = ["TransportContract"]


class TransportContract(ContractBase):
    """enqueue, enqueue_sync, fetch, extend, ack, ack_many, requeue, dead_letter, close."""

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

    def test_fetch_returns_empty_after_timeout_and_takes_nothing(
        self, make_broker: MakeBroker
    ) -> None:
        first, second = make_broker(), make_broker()

        async def scenario() -> None:
            assert await first.fetch(["q"], 1, 0.3) == []
            assert await asyncio.wait_for(first.fetch(["q"], 1, 0), 10.0) == []
            m = msg()
            await put(second, m)
            assert [d.task_id for d in await second.fetch(["q"], 5, 1.0)] == [m.id]

        run(scenario())

    def test_blocking_fetch_wakes_on_enqueue(self, make_broker: MakeBroker) -> None:
        consumer, producer = make_broker(), make_broker()

        async def scenario() -> None:
            m = msg()
            waiting = asyncio.ensure_future(consumer.fetch(["q"], 1, 10.0))
            await asyncio.sleep(0.2)
            assert not waiting.done()  # nothing to take yet: it waits
            await put(producer, m)
            got = await waiting
            assert [d.task_id for d in got] == [m.id]

        run(scenario())

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
            assert [x.task_id for x in await broker.fetch(["q"], 10, 1.0)] == [m.id]

        run(scenario())

    # -- delays ----------------------------------------------------------------------

    def test_delayed_message_waits_for_its_eta(self, broker: Broker) -> None:
        async def scenario() -> None:
            eta = time.time() + 0.5
            m = msg(eta=eta)
            await put(broker, m)
            state = await stored_state(broker, m.id)
            assert state.status == "SCHEDULED"
            assert await broker.fetch(["q"], 1, 0) == []
            got = await broker.fetch(["q"], 1, 5.0)
            assert [d.task_id for d in got] == [m.id]
            assert time.time() >= eta - 0.1, "delivered before its eta"

        run(scenario())

    def test_due_message_is_delivered_by_a_later_consumer(self, make_broker: MakeBroker) -> None:
        m = msg(eta=time.time() + 0.3)
        run(put(make_broker(), m))
        time.sleep(0.5)  # nobody is fetching when it comes due
        got = run(make_broker().fetch(["q"], 1, 1.0))
        assert [d.task_id for d in got] == [m.id]

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

    def test_dead_letter_ends_the_lease_and_writes_the_state(self, broker: Broker) -> None:
        async def scenario() -> None:
            m, d = await lease_one(broker)
            await broker.dead_letter(d, "ValueError: boom", done(m, "FAILURE"))
            state = await stored_state(broker, m.id)
            assert state.status == "FAILURE"
            assert await broker.fetch(["q"], 10, 0) == []

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
