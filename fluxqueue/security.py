"""Message signing and size limits: what a worker checks before it trusts a message.

Why signing: anyone who can write to the broker (a Redis password is often shared, a SQLite
file is readable by a group) can otherwise make a worker run any registered task with any
arguments, and, with pickle accepted, run any code at all. With a key, every message carries
an HMAC-SHA256 that only key holders can compute, and a worker with a key dead-letters
unsigned and tampered messages before it decodes their body.

What is signed: the canonical form of the header (sorted keys, ASCII JSON, the signature
itself left out) plus a newline and the body. The canonical form, not the bytes on the wire,
so a message decoded and encoded again (handed back at shutdown) still verifies. Every
field a worker acts on is covered, so a retry (new ``attempt`` and ``eta``) and
``fq.admin.retry_dead`` (attempts reset) sign again; both happen only after the original
signature was verified, so a retry never launders a forged message.

Key rotation: the first key signs, every key verifies. Deploy the new key as
``signing_key`` with the old one in ``verify_keys`` (``FLUXQUEUE_SIGNING_KEY`` and
``FLUXQUEUE_SIGNING_KEYS_OLD``) everywhere, wait until no message signed with the old key
is left (the longest retry backoff plus the queue's backlog), then drop the old key.

Why size limits: a broker holds every message in memory (Redis) or in one file (SQLite),
and a worker decodes a whole body before it can refuse it. Arguments and results are meant
to be references (an id, a path, a URL), not the data itself; the limits catch the mistake
at the producer and protect workers from a foreign producer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Sequence
from typing import Any

from fluxqueue.errors import ConfigurationError, PayloadTooLarge, SignatureError
from fluxqueue.message import Message

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_RESULT_SIZE",
    "MAX_HEADER_SIZE",
    "SIGNATURE_HEADER",
    "Signer",
    "check_body_size",
    "make_signer",
    "size_limit",
]

#: The ``Message.headers`` key that carries the signature.
SIGNATURE_HEADER = "fq-signature"
_SCHEME = "hmac-sha256:"

DEFAULT_MAX_MESSAGE_SIZE = 512 * 1024
DEFAULT_MAX_RESULT_SIZE = 512 * 1024
#: Room for the header on top of ``max_message_size``: a worker refuses a delivery longer
#: than both before it parses any JSON.
MAX_HEADER_SIZE = 64 * 1024

_canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode


def _key_bytes(key: str | bytes, what: str) -> bytes:
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, bytes) or not key:
        # Never show the value: it is a secret, even when it is a wrong one.
        raise ConfigurationError(f"{what} must be a non-empty str or bytes")
    return key


class Signer:
    """Signs messages with the first key and verifies with any of the keys.

    The keys are kept out of ``repr`` and every error message: they are secrets.
    """

    __slots__ = ("_keys",)

    def __init__(self, signing_key: str | bytes, verify_keys: Sequence[str | bytes] = ()) -> None:
        keys = [_key_bytes(signing_key, "signing_key")]
        for key in verify_keys:
            raw = _key_bytes(key, "every verify key")
            if raw not in keys:
                keys.append(raw)
        self._keys = tuple(keys)

    def __repr__(self) -> str:
        return f"<Signer hmac-sha256, {len(self._keys)} key(s)>"

    @property
    def key_count(self) -> int:
        return len(self._keys)

    @staticmethod
    def _payload(message: Message) -> bytes:
        header = message.header()
        headers = header["headers"]
        if SIGNATURE_HEADER in headers:
            header["headers"] = {k: v for k, v in headers.items() if k != SIGNATURE_HEADER}
        return _canonical_json(header).encode() + b"\n" + message.body

    def _digest(self, key: bytes, payload: bytes) -> str:
        return hmac.new(key, payload, hashlib.sha256).hexdigest()

    def sign(self, message: Message) -> Message:
        """Attach a signature to ``message`` (a new headers dict: copies may share the old)."""
        signature = _SCHEME + self._digest(self._keys[0], self._payload(message))
        message.headers = {**message.headers, SIGNATURE_HEADER: signature}
        return message

    def verify(self, message: Message) -> None:
        """Raise :class:`SignatureError` unless a known key signed exactly this message."""
        found: Any = message.headers.get(SIGNATURE_HEADER)
        if found is None:
            raise SignatureError(
                f"message {message.id} is not signed, and this worker only runs signed "
                "messages (it has a signing key); was it sent by a producer without "
                "FLUXQUEUE_SIGNING_KEY?"
            )
        if not isinstance(found, str) or not found.startswith(_SCHEME):
            raise SignatureError(
                f"message {message.id} has a malformed signature (expected {_SCHEME}<hex>)"
            )
        given = found[len(_SCHEME) :]
        payload = self._payload(message)
        for key in self._keys:
            if hmac.compare_digest(given, self._digest(key, payload)):
                return
        raise SignatureError(
            f"message {message.id} has a bad signature: it was changed after it was signed, "
            "or signed with a key this worker does not have (during a key rotation, keep the "
            "old key in verify_keys / FLUXQUEUE_SIGNING_KEYS_OLD)"
        )


def make_signer(
    signing_key: str | bytes | None, verify_keys: Sequence[str | bytes] | None
) -> Signer | None:
    """The app's signer from its arguments, else ``FLUXQUEUE_SIGNING_KEY`` and
    ``FLUXQUEUE_SIGNING_KEYS_OLD`` (comma-separated); None when no key is set."""
    if signing_key is None:
        signing_key = os.environ.get("FLUXQUEUE_SIGNING_KEY") or None
    if verify_keys is None:
        raw = os.environ.get("FLUXQUEUE_SIGNING_KEYS_OLD", "")
        verify_keys = [k.strip() for k in raw.split(",") if k.strip()]
    if signing_key is None:
        if verify_keys:
            raise ConfigurationError(
                "verify_keys (FLUXQUEUE_SIGNING_KEYS_OLD) need a signing_key "
                "(FLUXQUEUE_SIGNING_KEY) as well: the first key signs, all of them verify"
            )
        return None
    return Signer(signing_key, verify_keys)


_SIZE = re.compile(r"^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2}
_UNITS["mib"] = 1024**2


def size_limit(value: int | None, env: str, default: int) -> int | None:
    """A size limit in bytes from an argument, else the variable ``env`` (``"512KiB"``,
    ``"2M"``, ``"65536"``), else ``default``; 0 means no limit (None)."""
    if value is None:
        raw = os.environ.get(env)
        if raw is None or not raw.strip():
            value = default
        else:
            match = _SIZE.match(raw)
            if match is None:
                raise ConfigurationError(
                    f"{env} must be a size in bytes such as 524288, 512KiB or 2MiB; got {raw!r}"
                )
            value = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"a size limit must be an integer >= 0 bytes, got {value!r}")
    return value or None


def check_body_size(size: int, limit: int | None, what: str, setting: str) -> None:
    """Raise :class:`PayloadTooLarge` naming the size, the limit and the setting."""
    if limit is not None and size > limit:
        raise PayloadTooLarge(
            f"{what} is {size:,} bytes, over the {setting} limit of {limit:,} bytes; pass a "
            "reference (an id, a path, a URL) instead of the data, or raise the limit with "
            f"FluxQueue({setting}=...) or FLUXQUEUE_{setting.upper()}",
            size=size,
            limit=limit,
        )
