"""Every error fluxqueue raises, in one tree.

    FluxQueueError
    ├── ConfigurationError (ValueError)      bad URL, bad option value
    │   └── UnknownComponentError (LookupError)  unknown broker scheme or serializer name
    ├── PluginError
    │   ├── PluginLoadError                  a plugin failed to import (strict mode)
    │   └── PluginConflictError              two plugins claim one name
    ├── SerializationError (TypeError)       an argument or result the serializer refuses
    │   └── PayloadTooLarge                  arguments or a result over the size limit
    ├── MessageError                         a payload that cannot be decoded or is refused
    │   ├── ContentTypeRefused               a serializer the worker does not accept
    │   └── SignatureError                   unsigned or tampered, on a worker with a key
    ├── BrokerError                          the broker failed an operation
    │   ├── BrokerConnectionError (ConnectionError)  the broker cannot be reached
    │   └── UnsupportedOperation             the backend does not offer this operation
    ├── TaskError
    │   ├── InvalidTaskError (TypeError)     @task on something that is not a function
    │   ├── DuplicateTaskError               two functions registered under one name
    │   ├── UnknownTaskError (LookupError)   a worker got a task name it does not know
    │   ├── TaskFailed                       result() of a task that ended in FAILURE
    │   ├── TaskAborted                      result() of a task that was aborted
    │   └── TaskTimeout                      the task ran longer than its timeout
    └── Retry                                raised by a task to ask for another attempt

Waiting for a result that does not come in time raises the builtin ``TimeoutError``, so
``except TimeoutError`` works the same as with ``concurrent.futures`` and asyncio.
"""

from __future__ import annotations


class FluxQueueError(Exception):
    """The root of every fluxqueue error."""


class ConfigurationError(FluxQueueError, ValueError):
    """A setting (URL, option, environment variable) has a value fluxqueue cannot use."""


class UnknownComponentError(ConfigurationError, LookupError):
    """No plugin provides the broker scheme or serializer name that was asked for."""


class PluginError(FluxQueueError):
    """A plugin is broken or conflicts with another."""


class PluginLoadError(PluginError):
    """A plugin's entry point failed to import or to register."""


class PluginConflictError(PluginError):
    """Two plugins register the same broker scheme or serializer name."""


class SerializationError(FluxQueueError, TypeError):
    """The serializer cannot encode a value; the message names the argument and its type."""


class MessageError(FluxQueueError):
    """A message that cannot be decoded: corrupt header, body or missing fields."""


class ContentTypeRefused(MessageError):
    """The message was encoded with a serializer this worker does not accept."""


class SignatureError(MessageError):
    """A worker with a signing key got an unsigned message or one whose signature fails."""


class PayloadTooLarge(SerializationError):
    """Serialized arguments or a result exceed ``max_message_size`` / ``max_result_size``.

    ``size`` and ``limit`` are in bytes. Never retried: the same call gives the same size.
    """

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(message)


class BrokerError(FluxQueueError):
    """The broker failed an operation."""


class BrokerConnectionError(BrokerError, ConnectionError):
    """The broker cannot be reached; the message says where fluxqueue tried."""


class UnsupportedOperation(BrokerError):
    """The backend does not offer an optional operation (listing dead letters, purging,
    ...); the message names the backend and the operation."""


class TaskError(FluxQueueError):
    """Something about a task: its definition, its lookup or its outcome."""


class InvalidTaskError(TaskError, TypeError):
    """A task definition fluxqueue cannot use (not callable, bad option)."""


class DuplicateTaskError(TaskError):
    """Two different functions were registered under one task name."""


class UnknownTaskError(TaskError, LookupError):
    """A task name that is not registered in this process."""


class TaskFailed(TaskError):
    """The task ended in FAILURE. Carries the remote exception's type, message and traceback."""

    def __init__(
        self, task_id: str, error_type: str, message: str, traceback: str | None = None
    ) -> None:
        self.task_id = task_id
        self.error_type = error_type
        self.error_message = message
        self.traceback = traceback
        super().__init__(f"task {task_id} failed: {error_type}: {message}")


class TaskAborted(TaskError):
    """The task was aborted before it could finish."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(f"task {task_id} was aborted")


class TaskTimeout(TaskError):
    """The task ran longer than its ``timeout`` and was stopped."""


class Retry(FluxQueueError):
    """Raise inside a task to ask for another attempt, after ``delay`` seconds if given.

    It counts towards ``max_retries``: once those are used up the task ends in FAILURE.
    """

    def __init__(self, delay: float | None = None, reason: str = "retry requested") -> None:
        self.delay = delay
        self.reason = reason
        super().__init__(reason if delay is None else f"{reason} (in {delay:g}s)")
