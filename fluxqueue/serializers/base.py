"""The serializer contract: four members, nothing else."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar


class Serializer(ABC):
    """Turns Python values into bytes and back.

    ``name`` is what users pass (``serializer="json"``, ``accept=["json"]``) and what a
    plugin registers; ``content_type`` travels in every message header so a worker knows
    which serializer decodes the body. Both must be unique among installed serializers.

    ``dumps`` raises :class:`fluxqueue.errors.SerializationError` for a value it cannot
    encode, saying which value and why; ``loads`` raises
    :class:`fluxqueue.errors.MessageError` for bytes it cannot decode.
    Instances must be safe to share between threads.
    """

    name: ClassVar[str]
    content_type: ClassVar[str]

    @abstractmethod
    def dumps(self, value: Any) -> bytes: ...

    @abstractmethod
    def loads(self, data: bytes) -> Any: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.content_type})>"
