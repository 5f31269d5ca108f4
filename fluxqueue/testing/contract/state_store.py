"""The state store group: task states with a ttl, waiting for a status, streamed outputs."""

from __future__ import annotations

import asyncio

from fluxqueue.backends.base import Broker
from fluxqueue.state import State
from fluxqueue.testing.contract.support import ContractBase, MakeBroker, run, stored_state

__all__ = ["StateStoreContract"]


class StateStoreContract(ContractBase):
    """set_state, get_state, wait_state, add_output, get_outputs."""

    def test_set_state_replaces_the_previous_one(self, broker: Broker) -> None:
        async def scenario() -> None:
            await broker.set_state("x", State("STARTED", b"{}\n", 60))
            await broker.set_state("x", State("SUCCESS", b'{"a":1}\n7', 60))
            state = await stored_state(broker, "x")
            assert (state.status, state.data) == ("SUCCESS", b'{"a":1}\n7')
            assert await broker.get_state("never-seen") is None

        run(scenario())

    def test_state_expires_after_its_ttl(self, broker: Broker) -> None:
        async def scenario() -> None:
            await broker.set_state("x", State("SUCCESS", b"{}\n", ttl=0.3))
            await broker.set_state("kept", State("SUCCESS", b"{}\n"))
            state = await stored_state(broker, "x")
            assert state.status == "SUCCESS"
            await asyncio.sleep(1.2)
            assert await broker.get_state("x") is None
            assert (await stored_state(broker, "kept")).status == "SUCCESS"

        run(scenario())

    def test_wait_state(self, make_broker: MakeBroker) -> None:
        waiter, writer = make_broker(), make_broker()

        async def scenario() -> None:
            task = asyncio.ensure_future(waiter.wait_state("w", {"SUCCESS"}, 5.0))
            await asyncio.sleep(0.1)
            await writer.set_state("w", State("STARTED", b"", 60))
            await asyncio.sleep(0.1)
            assert not task.done()  # STARTED is not what it waits for
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
