"""fluxqueue: a Python task queue with pluggable backends.

The public API, in groups: the app and its tasks (FluxQueue, Task, SyncTask, AsyncTask,
Sender, TaskOptions, Message); following a task (TaskHandle, TaskResult, Status, Priority);
inside a running task (current_task, CurrentTask, Context, Retry); plugin contracts
(Broker, Serializer, hookimpl; everything a plugin needs is in ``fluxqueue.plugin_api``);
and the errors, all rooted at FluxQueueError.

Names are imported on first use (PEP 562 ``__getattr__``), so that ``import fluxqueue``
and the modules a worker needs do not drag in what that process never uses; the
``TYPE_CHECKING`` block below keeps the names visible to type checkers and IDEs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fluxqueue.app import FluxQueue
    from fluxqueue.backends.base import Broker
    from fluxqueue.context import Context, CurrentTask, current_task
    from fluxqueue.errors import (
        BrokerConnectionError,
        BrokerError,
        ConfigurationError,
        ContentTypeRefused,
        DuplicateTaskError,
        FluxQueueError,
        InvalidTaskError,
        MessageError,
        PayloadTooLarge,
        PluginConflictError,
        PluginError,
        PluginLoadError,
        Retry,
        SerializationError,
        SignatureError,
        TaskAborted,
        TaskError,
        TaskFailed,
        TaskTimeout,
        UnknownComponentError,
        UnknownTaskError,
        UnsupportedOperation,
    )
    from fluxqueue.handle import Priority, Status, TaskHandle, TaskResult
    from fluxqueue.message import Message
    from fluxqueue.plugins.hookspecs import hookimpl
    from fluxqueue.serializers.base import Serializer
    from fluxqueue.task import AsyncTask, Sender, SyncTask, Task, TaskOptions

__version__ = "1!0.2.0"

_ERRORS = (
    "BrokerConnectionError BrokerError ConfigurationError ContentTypeRefused DuplicateTaskError "
    "FluxQueueError InvalidTaskError MessageError PayloadTooLarge PluginConflictError "
    "PluginError PluginLoadError Retry SerializationError SignatureError TaskAborted TaskError "
    "TaskFailed TaskTimeout UnknownComponentError UnknownTaskError UnsupportedOperation"
)

#: Public name -> the module that defines it.
_SOURCES: dict[str, str] = {
    "FluxQueue": "fluxqueue.app",
    "Broker": "fluxqueue.backends.base",
    "Context": "fluxqueue.context",
    "CurrentTask": "fluxqueue.context",
    "current_task": "fluxqueue.context",
    **dict.fromkeys(_ERRORS.split(), "fluxqueue.errors"),
    "Priority": "fluxqueue.handle",
    "Status": "fluxqueue.handle",
    "TaskHandle": "fluxqueue.handle",
    "TaskResult": "fluxqueue.handle",
    "Message": "fluxqueue.message",
    "hookimpl": "fluxqueue.plugins.hookspecs",
    "Serializer": "fluxqueue.serializers.base",
    "AsyncTask": "fluxqueue.task",
    "Sender": "fluxqueue.task",
    "SyncTask": "fluxqueue.task",
    "Task": "fluxqueue.task",
    "TaskOptions": "fluxqueue.task",
}

__all__ = [
    "AsyncTask",
    "Broker",
    "BrokerConnectionError",
    "BrokerError",
    "ConfigurationError",
    "ContentTypeRefused",
    "Context",
    "CurrentTask",
    "DuplicateTaskError",
    "FluxQueue",
    "FluxQueueError",
    "InvalidTaskError",
    "Message",
    "MessageError",
    "PayloadTooLarge",
    "PluginConflictError",
    "PluginError",
    "PluginLoadError",
    "Priority",
    "Retry",
    "Sender",
    "SerializationError",
    "Serializer",
    "SignatureError",
    "Status",
    "SyncTask",
    "Task",
    "TaskAborted",
    "TaskError",
    "TaskFailed",
    "TaskHandle",
    "TaskOptions",
    "TaskResult",
    "TaskTimeout",
    "UnknownComponentError",
    "UnknownTaskError",
    "UnsupportedOperation",
    "__version__",
    "current_task",
    "hookimpl",
]


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'fluxqueue' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value  # once imported, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
