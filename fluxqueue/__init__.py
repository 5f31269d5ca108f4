"""fluxqueue: a Python task queue with pluggable backends."""

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
    PluginConflictError,
    PluginError,
    PluginLoadError,
    Retry,
    SerializationError,
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
from fluxqueue.task import AsyncTask, SyncTask, Task, TaskOptions

__version__ = "0.1.0"

__all__ = [
    # The app and its tasks
    "AsyncTask",
    # Plugin contracts
    "Broker",
    # Errors
    "BrokerConnectionError",
    "BrokerError",
    "ConfigurationError",
    "ContentTypeRefused",
    # Inside a running task
    "Context",
    "CurrentTask",
    "DuplicateTaskError",
    "FluxQueue",
    "FluxQueueError",
    "InvalidTaskError",
    "Message",
    "MessageError",
    "PluginConflictError",
    "PluginError",
    "PluginLoadError",
    # Following a task
    "Priority",
    "Retry",
    "SerializationError",
    "Serializer",
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
