"""Task state records: what a broker stores per task id so a handle can follow the task.

A broker keeps two things per task: a ``status`` string (a :class:`~fluxqueue.handle.Status`
value) that it may change on its own (abort of a queued task sets ``ABORTED``), and an opaque
``data`` blob written by whoever knows the details: the producer at enqueue time, the worker
afterwards. The blob uses the message framing: a JSON header of metadata, then the
serialized return value (empty unless the task succeeded).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fluxqueue.message import Message, frame, unframe

__all__ = ["State", "decode_state", "encode_state", "initial_state"]


@dataclass(frozen=True, slots=True)
class State:
    """A task's status, its metadata blob and how long the broker should keep them."""

    status: str
    data: bytes
    ttl: float | None = None


def encode_state(
    status: str,
    message: Message,
    *,
    ttl: float | None = None,
    result: bytes = b"",
    **meta: Any,
) -> State:
    """Build the state record for ``message``; ``meta`` adds timestamps, errors, worker..."""
    header: dict[str, Any] = {
        "status": status,
        "name": message.task,
        "queue": message.queue,
        "enqueued_at": message.created_at,
        "eta": message.eta,
        "attempts": message.attempt,
        "max_retries": message.max_retries,
    }
    header.update(meta)
    return State(status, frame(header, result), ttl)


def initial_state(message: Message, ttl: float | None = None) -> State:
    """The record a broker writes when it accepts ``message``: PENDING, or SCHEDULED while
    its eta lies ahead."""
    eta = message.eta
    status = "SCHEDULED" if eta is not None and eta > time.time() else "PENDING"
    return encode_state(status, message, ttl=ttl)


def decode_state(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Metadata and serialized result of a state blob."""
    return unframe(data)
