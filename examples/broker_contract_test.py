"""The broker contract suite, run the way a third-party backend runs it.

Subclass BrokerContract and provide `make_broker`: every call within one test returns a
broker on the same, fresh store, honouring `visibility_timeout`. The memory broker stands
in for your backend here; its store lives in the instance, so the factory hands out one
instance per test.

Run it: python -m pytest examples/broker_contract_test.py
"""

import pytest

from fluxqueue.backends.memory import MemoryBroker
from fluxqueue.testing.contract import BrokerContract, MakeBroker


class TestMemoryBrokerContract(BrokerContract):
    @pytest.fixture
    def make_broker(self) -> MakeBroker:
        store: list[MemoryBroker] = []

        def make(visibility_timeout: float = 30.0) -> MemoryBroker:
            if not store:
                store.append(MemoryBroker(f"memory://?visibility_timeout={visibility_timeout}"))
            return store[0]

        return make
