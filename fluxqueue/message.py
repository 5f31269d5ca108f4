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

__all__ = ["Delivery", "Message", "decode_json", "frame", "jnum", "jstr", "new_id", "unframe"]

FORMAT_VERSION = 1

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_DECODER = json.JSONDecoder()
_scan_json: Any = _DECODER.scan_once  # type: ignore[attr-defined]  # set in __init__


def decode_json(text: str) -> Any:
    """``json.loads(text)`` with fewer steps when ``text`` is one value with no whitespace
    around it (what fluxqueue writes): the scanner is called directly, without
    ``JSONDecoder.decode``'s two whitespace matches. Anything else, errors included, takes
    the full decoder, so the result and the error messages are ``json.loads``'s."""
    try:
        value, end = _scan_json(text, 0)
    except (StopIteration, ValueError, RecursionError):
        end = -1
    if end == len(text):
        return value
    return _DECODER.decode(text)


#: How ``_dumps`` writes a string (the C accelerator when present).
jstr: Any = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring


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


def jnum(value: Any) -> str | None:
    """``value`` as ``_dumps`` writes it when it is None, an int or a finite float; None
    for anything else (a bool, an int subclass, NaN...), which callers hand to ``_dumps``."""
    kind = type(value)
    if kind is float:
        return float.__repr__(value) if value - value == 0 else None
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    return None


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
        header = decode_json(head.decode())
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


#: (task, queue, content_type, priority, attempt, max_retries) -> the header's JSON around
#: ``created_at`` (see ``Message._routing``). The numbers are checked to be exact ints
#: before a lookup, so ``True`` or ``2.0`` never find the entry of ``1`` or ``2``.
_ROUTING: dict[tuple[Any, ...], tuple[str, str]] = {}


class _Claim:
    """The slot behind :meth:`Message.mark_minted`: not a dataclass field, so it is not on
    the wire, not compared, not an argument, and not carried by ``dataclasses.replace``,
    ``copy`` or pickle (a copy is a second message under the same id)."""

    __slots__ = ("_minted",)
    _minted: str

    def _claim(self, task_id: str) -> None:
        self._minted = task_id

    def _take_claim(self) -> str | None:
        try:
            minted = self._minted
        except AttributeError:
            return None
        del self._minted
        return minted

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        fields: Any = getattr(self, "__dataclass_fields__", {})
        return None, {name: getattr(self, name) for name in fields}


@dataclass(slots=True)
class Message(_Claim):
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

    def mark_minted(self) -> Message:
        """Declare that ``id`` was just generated with :func:`new_id` for this message alone.

        A broker may then skip looking for an older message stored under the same id (the
        replace-on-re-enqueue rule cannot apply). The claim holds only while ``id`` is
        that very string: assigning another id withdraws it, and :meth:`spend_minted`
        withdraws it once the message has been sent.
        """
        self._claim(self.id)
        return self

    def spend_minted(self) -> bool:
        """True (once) if :meth:`mark_minted` vouches for the current ``id``.

        A broker calls it while it builds its request, so that a message sent again (the
        same object enqueued twice) takes the general path the second time.
        """
        minted = self._take_claim()
        return minted is not None and minted is self.id

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
        """``frame(self.header(), self.body)``, byte for byte, without building the dict.

        Every field is written as ``_dumps`` would (same key order, separators and string
        escaping); a field of an unusual type (an int subclass, a NaN...) falls back to
        ``_dumps`` itself. The fields that messages of one task share are formatted once
        and cached (see ``_routing``).
        """
        created, headers = self.created_at, self.headers
        priority, attempt, retries = self.priority, self.attempt, self.max_retries
        routing = None
        if (
            self.eta is None
            and self.timeout is None
            and type(created) is float
            # exact types: 2.0 and True are equal to ints as keys, not in JSON
            and type(priority) is int
            and type(attempt) is int
            and type(retries) is int
        ):
            routing = _ROUTING.get(
                (self.task, self.queue, self.content_type, priority, attempt, retries)
            )
            if routing is None:
                routing = self._routing()
        if routing is None or type(headers) is not dict or created - created != 0:
            return self._encode_fields()
        mid = self.id
        if type(mid) is not str:
            return frame(self.header(), self.body)
        head = (
            f'{{"v":{FORMAT_VERSION},"id":{jstr(mid)},{routing[0]}{float.__repr__(created)}'
            f"{routing[1]}{_dumps(headers) if headers else '{}'}}}"
        )
        return head.encode() + b"\n" + self.body

    def _routing(self) -> tuple[str, str] | None:
        """The JSON around ``created_at`` for this task, queue and settings (no eta, no
        timeout), cached; None when a field has a type the cache does not handle."""
        task, queue, ctype = self.task, self.queue, self.content_type
        priority, attempt, retries = self.priority, self.attempt, self.max_retries
        if not (
            type(task) is str
            and type(queue) is str
            and type(ctype) is str
            and type(priority) is int
            and type(attempt) is int
            and type(retries) is int
        ):
            return None
        routing = (
            f'"task":{jstr(task)},"queue":{jstr(queue)},"priority":{priority},"eta":null,'
            f'"attempt":{attempt},"max_retries":{retries},"timeout":null,"created_at":',
            f',"content_type":{jstr(ctype)},"headers":',
        )
        if len(_ROUTING) >= 1024:
            _ROUTING.clear()
        _ROUTING[(task, queue, ctype, priority, attempt, retries)] = routing
        return routing

    def _encode_fields(self) -> bytes:
        """:meth:`encode` for messages with an eta or a timeout: field by field."""
        eta, timeout = jnum(self.eta), jnum(self.timeout)
        created = jnum(self.created_at)
        priority, attempt = jnum(self.priority), jnum(self.attempt)
        retries = jnum(self.max_retries)
        task, queue, ctype, mid = self.task, self.queue, self.content_type, self.id
        if (
            eta is None
            or timeout is None
            or created is None
            or priority is None
            or attempt is None
            or retries is None
            or type(task) is not str
            or type(queue) is not str
            or type(ctype) is not str
            or type(mid) is not str
            or type(self.headers) is not dict
        ):
            return frame(self.header(), self.body)
        headers = _dumps(self.headers) if self.headers else "{}"
        head = (
            f'{{"v":{FORMAT_VERSION},"id":{jstr(mid)},"task":{jstr(task)},'
            f'"queue":{jstr(queue)},"priority":{priority},"eta":{eta},'
            f'"attempt":{attempt},"max_retries":{retries},"timeout":{timeout},'
            f'"created_at":{created},"content_type":{jstr(ctype)},"headers":{headers}}}'
        )
        return head.encode() + b"\n" + self.body

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
