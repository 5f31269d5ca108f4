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

from fluxqueue.message import Message, frame, jnum, jstr, unframe

__all__ = ["State", "decode_state", "encode_state", "initial_state", "success_state"]


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


#: (name, queue, max_retries, content_type, worker) -> the JSON of a SUCCESS state around
#: its numbers; only exact ints and strs are stored and looked up.
_SUCCESS: dict[tuple[Any, ...], tuple[str, str, str]] = {}


def success_state(
    message: Message,
    *,
    ttl: float | None,
    result: bytes,
    content_type: str,
    attempts: int,
    started_at: float,
    completed_at: float,
    worker: str,
) -> State:
    """``encode_state("SUCCESS", message, ...)`` with these fields, byte for byte, built
    from cached parts when every field has a plain type (this runs once per task)."""
    numbers = (
        jnum(message.created_at), jnum(message.eta), jnum(started_at), jnum(completed_at)
    )  # fmt: skip
    key = (message.task, message.queue, message.max_retries, content_type, worker)
    parts = _SUCCESS.get(key)
    if parts is None and None not in numbers and _plain(key):
        if len(_SUCCESS) >= 1024:
            _SUCCESS.clear()
        parts = _SUCCESS[key] = (
            f'{{"status":"SUCCESS","name":{jstr(key[0])},"queue":{jstr(key[1])},"enqueued_at":',
            f',"max_retries":{key[2]},"content_type":{jstr(key[3])},"started_at":',
            f',"worker":{jstr(key[4])}}}\n',
        )
    if parts is None or None in numbers or type(attempts) is not int:
        return encode_state(
            "SUCCESS", message, ttl=ttl, result=result, content_type=content_type,
            attempts=attempts, started_at=started_at, completed_at=completed_at, worker=worker,
        )  # fmt: skip
    created, eta, started, completed = numbers
    head = (
        f'{parts[0]}{created},"eta":{eta},"attempts":{attempts}{parts[1]}{started},'
        f'"completed_at":{completed}{parts[2]}'
    )
    return State("SUCCESS", head.encode() + result, ttl)


def _plain(key: tuple[Any, ...]) -> bool:
    name, queue, retries, content_type, worker = key
    return (
        type(name) is str
        and type(queue) is str
        and type(retries) is int
        and type(content_type) is str
        and type(worker) is str
    )


#: (name, queue, attempts, max_retries) -> the JSON of a PENDING state around
#: ``enqueued_at``; only exact ints and strs are stored and looked up.
_PENDING: dict[tuple[Any, ...], tuple[str, str]] = {}


def initial_state(message: Message, ttl: float | None = None) -> State:
    """The record a broker writes when it accepts ``message``: PENDING or SCHEDULED.

    Byte for byte what :func:`encode_state` writes, built without the dict and the JSON
    encoder when every field has a plain type (this runs once per enqueued message).
    """
    eta, created = message.eta, message.created_at
    attempts, retries = message.attempt, message.max_retries
    if (
        eta is None
        and type(created) is float
        and created - created == 0
        and type(attempts) is int
        and type(retries) is int
    ):
        key = (message.task, message.queue, attempts, retries)
        parts = _PENDING.get(key)
        if parts is None and type(key[0]) is str and type(key[1]) is str:
            if len(_PENDING) >= 1024:
                _PENDING.clear()
            parts = _PENDING[key] = (
                f'{{"status":"PENDING","name":{jstr(key[0])},"queue":{jstr(key[1])},"enqueued_at":',
                f',"eta":null,"attempts":{attempts},"max_retries":{retries}}}\n',
            )
        if parts is not None:
            return State("PENDING", f"{parts[0]}{float.__repr__(created)}{parts[1]}".encode(), ttl)
    status = "SCHEDULED" if eta is not None and eta > time.time() else "PENDING"
    name, queue = message.task, message.queue
    created_text, eta_text = jnum(created), jnum(eta)
    attempts_text, retries_text = jnum(attempts), jnum(retries)
    if (
        created_text is None
        or eta_text is None
        or attempts_text is None
        or retries_text is None
        or type(name) is not str
        or type(queue) is not str
    ):
        return encode_state(status, message, ttl=ttl)
    head = (
        f'{{"status":"{status}","name":{jstr(name)},"queue":{jstr(queue)},'
        f'"enqueued_at":{created_text},"eta":{eta_text},"attempts":{attempts_text},'
        f'"max_retries":{retries_text}}}\n'
    )
    return State(status, head.encode(), ttl)


def decode_state(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Metadata and serialized result of a state blob."""
    return unframe(data)
