"""The broker contract suite, run the way a third-party backend runs it, group by group.

Each group of the contract has its own test class, so a backend in progress proves one
group at a time (the order below: each group's tests use the groups before it). Provide
`make_broker`: every call within one test returns a broker on the same, fresh store,
honouring `visibility_timeout`. Here the backend is examples/tiny_broker.py.

Run it: python -m pytest examples/broker_contract_test.py
(or one group: python -m pytest examples/broker_contract_test.py -k Coordination)
"""

import uuid

import pytest
from tiny_broker import TinyBroker

from fluxqueue.testing.contract import (
    AbortContract,
    CoordinationContract,
    MakeBroker,
    QueueAdminContract,
    StateStoreContract,
    TransportContract,
    WorkerRegistryContract,
)


class TinyBrokers:
    @pytest.fixture
    def make_broker(self) -> MakeBroker:
        store = uuid.uuid4().hex  # a fresh store for each test

        def make(visibility_timeout: float = 30.0) -> TinyBroker:
            return TinyBroker(f"tiny://{store}?visibility_timeout={visibility_timeout}")

        return make


class TestStateStore(TinyBrokers, StateStoreContract):
    pass


class TestTransport(TinyBrokers, TransportContract):
    pass


class TestCoordination(TinyBrokers, CoordinationContract):
    pass


class TestAborts(TinyBrokers, AbortContract):
    pass


class TestQueueAdmin(TinyBrokers, QueueAdminContract):
    # Optional operations this backend leaves out: their tests check the clear refusal.
    unsupported = frozenset({"dead_letters", "remove_dead", "purge", "promote_scheduled"})


class TestWorkerRegistry(TinyBrokers, WorkerRegistryContract):
    pass
