"""The hooks a fluxqueue plugin may implement (pluggy project name ``fluxqueue``).

Registration hooks are called once per process when the registries are built; each plugin
calls ``register(name, target)`` where ``target`` is a class or a lazy ``"module:attr"``
string, so that registering never imports a heavy client library.

Observer hooks are called by the worker and the producer as things happen. They must be
quick and must not raise: an exception is logged and otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from fluxqueue.message import Message

PROJECT = "fluxqueue"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: ``register(name, cls_or_"module:attr")``
Register = Callable[[str, Any], None]


@hookspec
def fluxqueue_register_brokers(register: Register) -> None:
    """Register Broker classes under URL schemes: ``register("redis", "pkg.mod:RedisBroker")``."""


@hookspec
def fluxqueue_register_serializers(register: Register) -> None:
    """Register Serializer classes under names: ``register("msgpack", MsgpackSerializer)``."""


@hookspec
def fluxqueue_task_enqueueing(app: Any, message: Message) -> None:
    """A message is about to be handed to the broker; ``message.headers`` may still be
    changed (a tracing plugin adds its context here)."""


@hookspec
def fluxqueue_task_enqueued(app: Any, message: Message) -> None:
    """A message was handed to the broker."""


@hookspec
def fluxqueue_task_started(app: Any, message: Message, worker_id: str) -> None:
    """A worker started an attempt of the task."""


@hookspec
def fluxqueue_task_succeeded(app: Any, message: Message, result: Any, duration: float) -> None:
    """The task returned; ``duration`` in seconds."""


@hookspec
def fluxqueue_task_retried(app: Any, message: Message, error: BaseException, delay: float) -> None:
    """The attempt failed and another one is scheduled ``delay`` seconds from now."""


@hookspec
def fluxqueue_task_failed(
    app: Any, message: Message, error: BaseException, duration: float
) -> None:
    """The task ended in FAILURE (its last attempt failed, or it cannot be retried)."""


@hookspec
def fluxqueue_task_dead_lettered(app: Any, task_id: str, queue: str, reason: str) -> None:
    """A message went to its queue's dead letters (failed task or undecodable payload)."""


@hookspec
def fluxqueue_worker_started(app: Any, worker_id: str, queues: list[str]) -> None:
    """A worker process is about to fetch its first messages."""


@hookspec
def fluxqueue_worker_stopping(app: Any, worker_id: str) -> None:
    """A worker stopped fetching and is finishing in-flight work."""
