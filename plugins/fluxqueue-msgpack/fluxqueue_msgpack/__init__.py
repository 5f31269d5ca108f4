"""A msgpack serializer for fluxqueue.

The serializer lives in :mod:`fluxqueue_msgpack.serializer`. This package imports it (and
``msgpack``) on first use only: importing the package is part of loading the entry point
``fluxqueue_msgpack.plugin``, which every fluxqueue process does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fluxqueue_msgpack.serializer import MsgpackSerializer

__all__ = ["MsgpackSerializer"]


def __getattr__(name: str) -> Any:
    if name == "MsgpackSerializer":
        from fluxqueue_msgpack.serializer import MsgpackSerializer

        return MsgpackSerializer
    raise AttributeError(f"module 'fluxqueue_msgpack' has no attribute {name!r}")
