"""RESP encoding of commands for the hot paths (enqueue, fetch, ack).

redis-py's ``pack_command`` runs every argument through its generic encoder (several type
checks and a memoryview test each) and builds the command in small pieces. The calls on
fluxqueue's hot paths carry up to tens of thousands of arguments whose types are known
(``bytes``, ``str``, ``int``), so they are encoded here in one pass and sent as one buffer
with ``send_packed_command``. The wire format is the same; only the Python work differs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["bulk", "pack", "raw"]


def raw(arg: Any) -> bytes:
    """The bytes Redis receives for one argument (as redis-py encodes them)."""
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, (int, float)) and not isinstance(arg, bool):
        return repr(arg).encode()
    raise TypeError(f"cannot send {type(arg).__name__} to Redis")


def bulk(arg: Any) -> bytes:
    """One argument as a RESP bulk string."""
    data = raw(arg)
    return b"$%d\r\n%b\r\n" % (len(data), data)


def pack(args: Iterable[Any]) -> bytes:
    """One command (name first, then its arguments) in the Redis protocol."""
    parts = [bulk(arg) for arg in args]
    return b"*%d\r\n%b" % (len(parts), b"".join(parts))
