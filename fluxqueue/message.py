"""The envelope that travels through a broker.

A message is a small JSON header that any process can read without the serializer (id, task
name, queue, priority, eta, attempt, ...) and an opaque body (the arguments) encoded by the
serializer named in ``content_type``. On the wire it is ``header + b"\\n" + body``; JSON
escapes newlines, so the first newline always ends the header. Because the header never
needs the serializer, a worker can dead-letter a message whose body it cannot or will not
decode, and a tool can list a queue without unpickling anything.

The same framing carries task state records (see ``fluxqueue.state``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.errors import MessageError

__all__ = ["Delivery", "Message", "frame", "new_id", "unframe"]

FORMAT_VERSION = 1


_CHECKED = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

#: ``_CHECKED`` without its check for circular references (the C encoder's ``markers``),
#: made once instead of once per call as ``JSONEncoder.encode`` does: the same output at
#: two thirds of the cost of a message header (docs/benchmarks.md, round 9). A header
#: that contains itself recurses until RecursionError and is then handed to ``_CHECKED``
#: for its usual error. The JSON serializer does the same for arguments.
_FAST: Any = None
_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)  # CPython's accelerator
_encode_string: Any = getattr(json.encoder, "c_encode_basestring", None)
if _make_encoder is not None and _encode_string is not None:
    _FAST = _make_encoder(None, _CHECKED.default, _encode_string, None, ":", ",", False, False,
                          True)  # fmt: skip


def _dumps(header: dict[str, Any]) -> str:
    if _FAST is not None:
        try:
            return "".join(_FAST(header, 0))
        except RecursionError:
            pass
    return _CHECKED.encode(header)


#: Ids drawn ahead from the kernel's generator, 64 per ``os.urandom`` call (see new_id).
_IDS: list[str] = []
_IDS_PER_DRAW = 64


def new_id() -> str:
    """A fresh task id: 32 hex characters (128 random bits), unique without coordination.

    ``os.urandom`` rather than ``uuid4()``: the same randomness at a fraction of the cost.
    The ids are drawn 64 at a time (one system call instead of one per id), and handed out
    with ``list.pop``, which is atomic, so two threads never get the same one. A forked
    child drops the ids its parent drew (``os.register_at_fork``) and draws its own.
    """
    try:
        return _IDS.pop()
    except IndexError:
        return _draw_ids()


def _draw_ids() -> str:
    text = os.urandom(16 * _IDS_PER_DRAW).hex()
    ids = [text[i : i + 32] for i in range(32, len(text), 32)]
    _IDS.extend(ids)
    return text[:32]


os.register_at_fork(after_in_child=_IDS.clear)


def frame(header: dict[str, Any], body: bytes) -> bytes:
    """Join a JSON header and an opaque body into one byte string."""
    return _dumps(header).encode() + b"\n" + body


def unframe(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Split what :func:`frame` joined; raise :class:`MessageError` on anything else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MessageError(f"expected bytes, got {type(data).__name__}")
    raw = bytes(data)
    head, sep, body = raw.partition(b"\n")
    if not sep:
        raise MessageError("no header separator: the payload is not a fluxqueue message")
    try:
        # From str: json.loads would first guess the bytes' encoding; ours is always UTF-8.
        header = json.loads(head.decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # "[[[[..." recurses
        raise MessageError(f"header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise MessageError(f"header must be a JSON object, got {type(header).__name__}")
    return header, body


_NUMBER = (int, float)

# Header keys on the wire, and the type each must have.
_FIELDS: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "id": ("id", str),
    "task": ("task", str),
    "queue": ("queue", str),
    "priority": ("priority", int),
    "eta": ("eta", (int, float, type(None))),
    "attempt": ("attempt", int),
    "max_retries": ("max_retries", int),
    "timeout": ("timeout", (int, float, type(None))),
    "created_at": ("created_at", (int, float)),
    "content_type": ("content_type", str),
    "headers": ("headers", dict),
}


@dataclass(slots=True)
class Message:
    """One task invocation: routing header plus serialized arguments."""

    task: str
    queue: str
    body: bytes
    content_type: str
    id: str = field(default_factory=new_id)
    priority: int = 2
    eta: float | None = None
    attempt: int = 0
    max_retries: int = 3
    timeout: float | None = None
    created_at: float = field(default_factory=time.time)
    headers: dict[str, Any] = field(default_factory=dict)

    def header(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "id": self.id,
            "task": self.task,
            "queue": self.queue,
            "priority": self.priority,
            "eta": self.eta,
            "attempt": self.attempt,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "created_at": self.created_at,
            "content_type": self.content_type,
            "headers": self.headers,
        }

    def encode(self) -> bytes:
        """The message on the wire: ``frame(self.header(), self.body)``."""
        return frame(self.header(), self.body)

    @classmethod
    def decode(cls, data: bytes) -> Message:
        """Parse a message; a missing or mistyped field raises :class:`MessageError`."""
        header, body = unframe(data)
        try:  # the common case, checked in one pass; anything odd takes the slow path
            mid, task, queue, priority = (
                header["id"],
                header["task"],
                header["queue"],
                header["priority"],
            )
            eta, attempt, retries = header["eta"], header["attempt"], header["max_retries"]
            timeout, created = header["timeout"], header["created_at"]
            ctype, headers = header["content_type"], header["headers"]
        except KeyError:
            pass
        else:
            if (
                type(mid) is str
                and type(task) is str
                and type(queue) is str
                and type(priority) is int
                and type(attempt) is int
                and type(retries) is int
                and type(ctype) is str
                and type(headers) is dict
                and type(created) in _NUMBER
                and (eta is None or type(eta) in _NUMBER)
                and (timeout is None or type(timeout) in _NUMBER)
            ):
                return cls(
                    task, queue, body, ctype, mid, priority, eta, attempt, retries, timeout,
                    created, headers,
                )  # fmt: skip
        return cls._decode_checked(header, body)

    @classmethod
    def _decode_checked(cls, header: dict[str, Any], body: bytes) -> Message:
        values: dict[str, Any] = {}
        for key, (attr, kind) in _FIELDS.items():
            if key not in header:
                raise MessageError(f"message header has no {key!r} field")
            value = header[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise MessageError(f"message header field {key!r} has type {type(value).__name__}")
            values[attr] = value
        return cls(body=body, **values)

    def is_delayed(self, now: float | None = None) -> bool:
        return self.eta is not None and self.eta > (time.time() if now is None else now)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message handed to a consumer under a lease.

    ``data`` is the encoded message exactly as it was enqueued; the consumer decodes it.
    ``receipt`` identifies this lease to the broker (a backend may leave it empty).
    """

    task_id: str
    queue: str
    data: bytes
    receipt: str = ""
