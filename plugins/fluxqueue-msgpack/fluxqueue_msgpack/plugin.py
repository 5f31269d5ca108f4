"""The entry point: registers the serializer lazily, so loading plugins never imports msgpack."""

from __future__ import annotations

from fluxqueue import hookimpl
from fluxqueue.plugins.hookspecs import Register


@hookimpl
def fluxqueue_register_serializers(register: Register) -> None:
    register("msgpack", "fluxqueue_msgpack.serializer:MsgpackSerializer")
