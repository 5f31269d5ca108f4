"""JSON, the default: safe to decode from anyone, strict about what it encodes."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from fluxqueue.errors import MessageError, SerializationError
from fluxqueue.serializers.base import Serializer


def _refuse(value: Any) -> NoReturn:
    raise SerializationError(
        f"{type(value).__module__}.{type(value).__qualname__} is not JSON serializable; "
        "pass plain types (str, int, float, bool, None, list, dict) such as an ISO string "
        "or an id, or use serializer='pickle'"
    )


class JSONSerializer(Serializer):
    """Standard-library JSON. Values such as ``datetime`` are refused, never coerced."""

    name = "json"
    content_type = "application/json"

    _encode = json.JSONEncoder(
        separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_refuse
    ).encode

    def dumps(self, value: Any) -> bytes:
        try:
            return self._encode(value).encode()
        except ValueError as exc:  # NaN or infinity; circular references
            raise SerializationError(f"not valid JSON: {exc}") from None

    def loads(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # "[[[[..." recurses
            raise MessageError(f"body is not valid JSON ({exc})") from None
