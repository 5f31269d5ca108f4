"""The broker contract: what every backend must do, as a pytest suite, one class per group.

A backend proves itself by subclassing the group classes (or :class:`BrokerContract`, all
of them) and providing one fixture, ``make_broker``: a factory that returns a broker on a
fresh, empty store for this test. Each call within one test must return a broker on the
*same* store (two consumers, or a producer and a consumer), honouring the
``visibility_timeout`` it is given::

    import pytest
    from fluxqueue.testing.contract import BrokerContract

    class TestMyBroker(BrokerContract):
        @pytest.fixture
        def make_broker(self, tmp_path):
            def make(visibility_timeout: float = 30.0):
                return MyBroker(f"mine://{tmp_path}/q?visibility_timeout={visibility_timeout}")
            return make

Prove one group at a time while you write a backend, in this order (each group's tests use
the ones before it): :class:`StateStoreContract`, :class:`TransportContract`,
:class:`CoordinationContract`, :class:`AbortContract`, :class:`QueueAdminContract`,
:class:`WorkerRegistryContract`. A backend that leaves optional admin operations out lists
them in the class attribute ``unsupported``.
"""

from __future__ import annotations

from fluxqueue.testing.contract.aborts import AbortContract
from fluxqueue.testing.contract.admin import QueueAdminContract, WorkerRegistryContract
from fluxqueue.testing.contract.coordination import CoordinationContract
from fluxqueue.testing.contract.state_store import StateStoreContract
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
from fluxqueue.testing.contract.transport import TransportContract

__all__ = [  # noqa: RUF022 - grouped by purpose, sorted within each group
    # the whole contract, and its groups
    "AbortContract",
    "BrokerContract",
    "ContractBase",
    "CoordinationContract",
    "QueueAdminContract",
    "StateStoreContract",
    "TransportContract",
    "WorkerRegistryContract",
    # writing your own tests next to them
    "MakeBroker",
    "done",
    "lease_one",
    "msg",
    "put",
    "run",
    "stored_state",
]


class BrokerContract(
    StateStoreContract,
    TransportContract,
    CoordinationContract,
    AbortContract,
    QueueAdminContract,
    WorkerRegistryContract,
):
    """Every group: subclass it and provide ``make_broker`` (see the module docstring)."""
