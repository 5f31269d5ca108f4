"""fluxqueue: a Python task queue with pluggable backends.

The public API, in groups: the app and its tasks (FluxQueue, Task, SyncTask, AsyncTask,
Sender, TaskOptions, Message); following a task (TaskHandle, TaskResult, Status, Priority);
inside a running task (current_task, CurrentTask, Context, Retry); plugin contracts
(Broker, Serializer, hookimpl); and the errors, all rooted at FluxQueueError.
"""

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
)
from fluxqueue.handle import Priority, Status, TaskHandle, TaskResult
from fluxqueue.message import Message
from fluxqueue.plugins.hookspecs import hookimpl
from fluxqueue.serializers.base import Serializer
from fluxqueue.task import AsyncTask, Sender, SyncTask, Task, TaskOptions

__version__ = "0.1.0"

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
    "__version__",
    "current_task",
    "hookimpl",
]
