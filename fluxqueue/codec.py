"""How one app turns task arguments, results and streamed items into bytes, and back.

The producer encodes a call's arguments with the app's serializer, within
``max_message_size``; a worker and a handle decode with any serializer the app accepts, and
refuse the others by name. Kept apart from ``app.py`` so that tasks, handles and the worker
use it without importing the app.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from fluxqueue.errors import ContentTypeRefused, SerializationError
from fluxqueue.message import frame, unframe
from fluxqueue.security import check_body_size
from fluxqueue.serializers.base import Serializer

__all__ = ["Codec"]


class Signed(Protocol):
    """What an argument error names: the task and its parameters (a ``TaskSpec``)."""

    @property
    def name(self) -> str: ...
    @property
    def signature(self) -> inspect.Signature | None: ...


class Codec:
    """The app's serializer, the serializers it accepts, and its size limits.

    ``resolve`` makes a serializer from a registered name (the plugin registry).
    ``max_message_size`` bounds serialized arguments, ``max_result_size`` results and
    streamed items (None: no limit).
    """

    __slots__ = (
        "_decoders",
        "_resolve",
        "accept",
        "max_message_size",
        "max_result_size",
        "serializer",
    )

    def __init__(
        self,
        serializer: Serializer,
        resolve: Callable[[str], Serializer],
        accept: Iterable[str],
        max_message_size: int | None,
        max_result_size: int | None,
    ) -> None:
        self.serializer = serializer
        self._resolve = resolve
        self.max_message_size = max_message_size
        self.max_result_size = max_result_size
        self.accept: list[str] = []
        self._decoders: dict[str, Serializer] = {}
        self.set_accept(accept)

    def set_accept(self, names: Iterable[str]) -> None:
        """Which serializers to decode (JSON and the app's own are always in)."""
        decoders = {self.serializer.content_type: self.serializer}
        accepted = [self.serializer.name]
        for name in ["json", *names]:
            serializer = self._resolve(name)
            if serializer.name not in accepted:
                accepted.append(serializer.name)
            decoders.setdefault(serializer.content_type, serializer)
        self.accept, self._decoders = accepted, decoders

    # -- arguments -------------------------------------------------------------------

    def encode_args(self, spec: Signed, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """Serialize a call's arguments; on failure, name the argument that is at fault."""
        try:
            body = self.serializer.dumps([args, kwargs])
        except SerializationError as exc:
            raise self._argument_error(spec, args, kwargs, exc) from None
        limit = self.max_message_size
        if limit is not None and len(body) > limit:
            check_body_size(
                len(body), limit, f"the serialized arguments of task {spec.name!r}",
                "max_message_size",
            )  # fmt: skip
        return body

    def _argument_error(
        self,
        spec: Signed,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        error: SerializationError,
    ) -> SerializationError:
        names = list(spec.signature.parameters) if spec.signature is not None else []
        candidates = [
            (names[i] if i < len(names) else f"#{i}", v) for i, v in enumerate(args)
        ] + list(kwargs.items())
        for arg_name, value in candidates:
            try:
                self.serializer.dumps(value)
            except SerializationError as exc:
                return SerializationError(
                    f"argument {arg_name!r} of task {spec.name!r} is a "
                    f"{type(value).__name__}, which the {self.serializer.name} serializer "
                    f"cannot encode: {exc}"
                )
        return SerializationError(f"arguments of task {spec.name!r}: {error}")

    # -- decoding --------------------------------------------------------------------

    def decode(self, content_type: str, data: bytes) -> Any:
        """Decode ``data`` with an accepted serializer, or refuse it clearly."""
        serializer = self._decoders.get(content_type)
        if serializer is None:
            raise ContentTypeRefused(
                f"content type {content_type!r} is not accepted here (accepted: "
                f"{', '.join(self.accept)}); if you trust the producers, add its serializer "
                "with FluxQueue(accept=[...]), --accept or FLUXQUEUE_ACCEPT"
            )
        return serializer.loads(data)

    # -- streamed items --------------------------------------------------------------

    def encode_output(self, value: Any, attempt: int = 0) -> bytes:
        """One streamed item, tagged with the serializer that encoded it and the attempt
        that yielded it (so a retried generator's items are told apart)."""
        header = {"content_type": self.serializer.content_type, "attempt": attempt}
        return frame(header, self.serializer.dumps(value))

    def decode_output(self, data: bytes) -> tuple[int, Any]:
        """(attempt, value) of one streamed item."""
        header, body = unframe(data)
        return int(header.get("attempt", 0)), self.decode(str(header.get("content_type")), body)

    def decode_outputs(self, items: Sequence[bytes]) -> list[Any]:
        """The values the latest attempt yielded (earlier, failed attempts are dropped)."""
        decoded = [self.decode_output(item) for item in items]
        latest = max((attempt for attempt, _ in decoded), default=0)
        return [value for attempt, value in decoded if attempt == latest]
