"""What every group of the contract suite shares: the fixtures and small helpers.

Tests are plain functions that drive the async API with ``asyncio.run``; no pytest plugin
is needed. Waits have generous margins so that the suite passes on a loaded machine, and
no test asserts how long something took: each asserts what came back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypeVar

import pytest

from fluxqueue.backends.base import Broker
from fluxqueue.message import Delivery, Message
from fluxqueue.state import State, encode_state

__all__ = [
    "ContractBase",
    "MakeBroker",
    "done",
    "lease_one",
    "msg",
    "put",
    "run",
    "stored_state",
]

T = TypeVar("T")
#: ``make_broker(visibility_timeout=30.0)``: a broker on this test's store.
MakeBroker = Callable[..., Broker]


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one scenario on a fresh event loop (each test uses several loops in turn)."""
    return asyncio.run(coro)


def msg(queue: str = "q", priority: int = 2, eta: float | None = None, **kw: Any) -> Message:
    """A message of task ``t`` with an empty JSON body."""
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
    """Enqueue ``messages`` with a 60 s state ttl."""
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
    """A final state for ``message``."""
    return encode_state(status, message, ttl=60, result=result)


class ContractBase:
    """The fixtures every group's tests use. Provide ``make_broker`` in your subclass.

    ``make_broker(visibility_timeout=30.0)`` returns a broker on a fresh, empty store for
    this test; each call within one test returns a broker on the *same* store (two
    consumers, or a producer and a consumer), honouring the ``visibility_timeout`` given.
    """

    #: Optional queue-admin operations the backend under test leaves out on purpose
    #: (any of "dead_letters", "remove_dead", "purge", "promote_scheduled"): their tests
    #: then check that each raises UnsupportedOperation naming the backend.
    unsupported: ClassVar[frozenset[str]] = frozenset()

    @pytest.fixture
    def make_broker(self) -> MakeBroker:
        raise NotImplementedError("provide a make_broker fixture")

    @pytest.fixture
    def broker(self, make_broker: MakeBroker) -> Broker:
        return make_broker()
