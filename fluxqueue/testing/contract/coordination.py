"""The coordination group: claims (one winner, expiry, renewal, release) and tallies."""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

import pytest

from fluxqueue.backends.base import Broker
from fluxqueue.errors import ConfigurationError
from fluxqueue.state import State
from fluxqueue.testing.contract.support import ContractBase, MakeBroker, run

__all__ = ["CoordinationContract"]


class CoordinationContract(ContractBase):
    """claim, release, tally."""

    # -- claim -----------------------------------------------------------------------

    def test_a_free_key_is_claimed_and_held(self, broker: Broker) -> None:
        async def scenario() -> None:
            assert await broker.claim("job", "alice", 30) == "alice"
            assert await broker.claim("job", "bob", 30) == "alice"
            assert await broker.claim("job", "alice", 30) == "alice"  # renewal
            assert await broker.claim("other", "bob", 30) == "bob"

        run(scenario())

    def test_concurrent_claims_have_exactly_one_winner(self, make_broker: MakeBroker) -> None:
        brokers = [make_broker(), make_broker(), make_broker()]

        async def scenario() -> None:
            tokens = [f"token-{i}" for i in range(30)]
            holders = await asyncio.gather(
                *(brokers[i % 3].claim("race", t, 30) for i, t in enumerate(tokens))
            )
            winners = [t for t, holder in zip(tokens, holders, strict=True) if holder == t]
            assert len(winners) == 1
            assert set(holders) == set(winners)  # every loser was told who won

        run(scenario())

    def test_concurrent_claims_from_threads_have_exactly_one_winner(
        self, make_broker: MakeBroker
    ) -> None:
        count = 8
        start = threading.Barrier(count)
        holders: dict[str, str] = {}
        errors: list[BaseException] = []

        def contend(token: str) -> None:
            broker = make_broker()
            try:
                start.wait(timeout=30)
                holders[token] = run(broker.claim("thread-race", token, 30))
                run(broker.close())
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=contend, args=(f"t{i}",)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        winners = [token for token, holder in holders.items() if holder == token]
        assert len(winners) == 1
        assert set(holders.values()) == set(winners)

    def test_a_claim_expires_after_its_ttl(self, broker: Broker) -> None:
        async def scenario() -> None:
            assert await broker.claim("lease", "alice", 0.3) == "alice"
            await asyncio.sleep(0.8)
            assert await broker.claim("lease", "bob", 30) == "bob"
            assert await broker.claim("lease", "alice", 30) == "bob"

        run(scenario())

    def test_renewing_a_claim_starts_its_ttl_over(self, broker: Broker) -> None:
        async def scenario() -> None:
            assert await broker.claim("renewed", "alice", 1.0) == "alice"
            await asyncio.sleep(0.6)
            assert await broker.claim("renewed", "alice", 1.0) == "alice"
            await asyncio.sleep(0.6)  # past the first ttl, inside the renewed one
            assert await broker.claim("renewed", "bob", 30) == "alice"

        run(scenario())

    # -- release ---------------------------------------------------------------------

    def test_release_by_the_holder_only(self, broker: Broker) -> None:
        async def scenario() -> None:
            assert await broker.claim("lock", "alice", 30) == "alice"
            assert await broker.release("lock", "bob") is False  # not the holder
            assert await broker.claim("lock", "bob", 30) == "alice"
            assert await broker.release("lock", "alice") is True
            assert await broker.release("lock", "alice") is False  # already free
            assert await broker.claim("lock", "bob", 30) == "bob"
            assert await broker.release("never-claimed", "alice") is False

        run(scenario())

    def test_an_expired_holder_cannot_release_the_next_one(self, broker: Broker) -> None:
        async def scenario() -> None:
            assert await broker.claim("handover", "alice", 0.3) == "alice"
            await asyncio.sleep(0.8)
            assert await broker.release("handover", "alice") is False
            assert await broker.claim("handover", "bob", 30) == "bob"
            assert await broker.release("handover", "alice") is False
            assert await broker.claim("handover", "carol", 30) == "bob"

        run(scenario())

    # -- tally -----------------------------------------------------------------------

    def test_tally_counts_distinct_members_once(self, broker: Broker) -> None:
        async def scenario() -> None:
            assert await broker.tally("group", "a", 30) == 1
            assert await broker.tally("group", "a", 30) == 1  # redelivered: counted once
            assert await broker.tally("group", "b", 30) == 2
            assert await broker.tally("other", "a", 30) == 1

        run(scenario())

    def test_concurrent_tallies_each_see_a_different_count(self, make_broker: MakeBroker) -> None:
        brokers = [make_broker(), make_broker(), make_broker()]

        async def scenario() -> None:
            counts = await asyncio.gather(
                *(brokers[i % 3].tally("chord", f"member-{i}", 30) for i in range(50))
            )
            # atomic: exactly one caller saw the set complete, one saw each size before
            assert sorted(counts) == list(range(1, 51))

        run(scenario())

    def test_a_tally_expires_and_each_tally_renews_it(self, broker: Broker) -> None:
        async def scenario() -> None:
            assert await broker.tally("window", "a", 0.3) == 1
            await asyncio.sleep(0.8)
            assert await broker.tally("window", "b", 30) == 1  # the old set is gone
            assert await broker.tally("kept", "a", 1.0) == 1
            await asyncio.sleep(0.6)
            assert await broker.tally("kept", "b", 1.0) == 2
            await asyncio.sleep(0.6)  # past the first ttl, inside the renewed one
            assert await broker.tally("kept", "c", 30) == 3

        run(scenario())

    # -- keys and input --------------------------------------------------------------

    def test_claims_tallies_and_states_never_collide(self, broker: Broker) -> None:
        async def scenario() -> None:
            assert await broker.claim("shared", "alice", 30) == "alice"
            assert await broker.tally("shared", "alice", 30) == 1
            assert await broker.get_state("shared") is None
            await broker.set_state("shared", State("SUCCESS", b"{}\n", 30))
            assert await broker.claim("shared", "bob", 30) == "alice"
            assert await broker.tally("shared", "bob", 30) == 2
            assert await broker.release("shared", "alice") is True

        run(scenario())

    @pytest.mark.parametrize(
        ("call", "args", "match"),
        [
            ("claim", ("k", "t", 0), "claim ttl must be a positive number"),
            ("claim", ("k", "t", -1.0), "claim ttl must be a positive number"),
            ("claim", ("k", "t", math.nan), "claim ttl must be a positive number"),
            ("claim", ("k", "t", "5"), "claim ttl must be a positive number"),
            ("claim", ("k", "", 5), "claim token must be a non-empty string"),
            ("claim", ("", "t", 5), "claim key must be a non-empty string"),
            ("release", ("k", ""), "claim token must be a non-empty string"),
            ("tally", ("k", "m", 0), "tally ttl must be a positive number"),
            ("tally", ("k", "", 5), "tally member must be a non-empty string"),
            ("tally", ("", "m", 5), "tally key must be a non-empty string"),
        ],
    )
    def test_bad_arguments_are_refused_clearly(
        self, broker: Broker, call: str, args: tuple[Any, ...], match: str
    ) -> None:
        with pytest.raises(ConfigurationError, match=match):
            run(getattr(broker, call)(*args))
