"""Pickle through cloudpickle: any Python value, for trusted networks only.

Unpickling runs code chosen by whoever wrote the bytes, so workers refuse this content type
unless it is accepted explicitly (``accept=["json", "pickle"]``, ``--accept pickle``).
"""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle

from fluxqueue.errors import MessageError, SerializationError
from fluxqueue.serializers.base import Serializer


class PickleSerializer(Serializer):
    name = "pickle"
    content_type = "application/x-python-pickle"

    def dumps(self, value: Any) -> bytes:
        try:
            data: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(f"cannot pickle: {type(exc).__name__}: {exc}") from None
        return data

    def loads(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise MessageError(f"body cannot be unpickled ({type(exc).__name__}: {exc})") from None
