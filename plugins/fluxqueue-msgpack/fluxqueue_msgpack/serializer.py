"""The msgpack serializer (imported only when an app asks for "msgpack")."""

from __future__ import annotations

from typing import Any

import msgpack

from fluxqueue.plugin_api import MessageError, SerializationError, Serializer

__all__ = ["MsgpackSerializer"]


class MsgpackSerializer(Serializer):
    """Plain data (and bytes) in a compact binary form. Tuples come back as lists."""

    name = "msgpack"
    content_type = "application/msgpack"

    def dumps(self, value: Any) -> bytes:
        try:
            data: bytes = msgpack.packb(value, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(f"not msgpack serializable: {exc}") from None
        return data

    def loads(self, data: bytes) -> Any:
        try:
            return msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:
            raise MessageError(f"body is not valid msgpack ({type(exc).__name__}: {exc})") from None
