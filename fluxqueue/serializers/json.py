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


_CHECKED = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_refuse
).encode

#: ``_CHECKED`` without its check for circular references (the C encoder's ``markers``),
#: made once instead of once per call as ``JSONEncoder.encode`` does: the same output for
#: a list (what every task's arguments are), at a third of the cost. A circular value
#: recurses until RecursionError and is then handed to ``_CHECKED`` for its usual error.
_FAST: Any = None
_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)  # CPython's accelerator
_encode_string: Any = getattr(json.encoder, "c_encode_basestring", None)
if _make_encoder is not None and _encode_string is not None:
    _FAST = _make_encoder(None, _refuse, _encode_string, None, ":", ",", False, False, False)


class JSONSerializer(Serializer):
    """Standard-library JSON. Values such as ``datetime`` are refused, never coerced."""

    name = "json"
    content_type = "application/json"

    _encode = _CHECKED

    def dumps(self, value: Any) -> bytes:
        encode = self._encode
        try:
            if encode is _CHECKED and _FAST is not None and type(value) is list:
                try:
                    return "".join(_FAST(value, 0)).encode()
                except RecursionError:  # circular, or just deep: let the checked encoder say
                    pass
            return encode(value).encode()
        except ValueError as exc:  # NaN or infinity; circular references
            raise SerializationError(f"not valid JSON: {exc}") from None

    def loads(self, data: bytes) -> Any:
        try:
            # From str: json.loads would first guess the bytes' encoding; ours is UTF-8.
            return json.loads(data.decode())
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # "[[[[..." recurses
            raise MessageError(f"body is not valid JSON ({exc})") from None
