"""The aborts group: remove a waiting task, flag a running one."""

from __future__ import annotations

import time

from fluxqueue.backends.base import Broker
from fluxqueue.state import State
from fluxqueue.testing.contract.support import ContractBase, msg, put, run, stored_state

__all__ = ["AbortContract"]


class AbortContract(ContractBase):
    """abort, abort_requested."""

    def test_abort_waiting_and_delayed(self, broker: Broker) -> None:
        async def scenario() -> None:
            ready, later = msg(), msg(eta=time.time() + 0.3)
            await put(broker, ready, later)
            assert await broker.abort(ready.id) == "aborted"
            assert await broker.abort(later.id) == "aborted"
            for m in (ready, later):
                state = await stored_state(broker, m.id)
                assert state.status == "ABORTED"
            # the delayed one's eta passes during this fetch: it must not come back
            assert await broker.fetch(["q"], 10, 1.0) == []
            assert await broker.abort(ready.id) == "missing"

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
            assert await broker.abort_requested([]) == set()
            for d in got:
                await broker.ack(d, State("ABORTED", b""))
            assert await broker.abort(m.id) == "missing"
            assert await broker.abort("never-seen") == "missing"

        run(scenario())

    def test_an_aborted_task_enqueued_again_starts_over(self, broker: Broker) -> None:
        async def scenario() -> None:
            aborted = msg()
            await put(broker, aborted)
            assert await broker.abort(aborted.id) == "aborted"
            await put(broker, aborted)
            state = await stored_state(broker, aborted.id)
            assert state.status == "PENDING"
            assert [x.task_id for x in await broker.fetch(["q"], 10, 1.0)] == [aborted.id]

        run(scenario())
