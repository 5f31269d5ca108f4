"""The entry point: registers the serializer lazily, so loading plugins never imports msgpack."""

from __future__ import annotations

from fluxqueue.plugin_api import Register, hookimpl


@hookimpl
def fluxqueue_register_serializers(register: Register) -> None:
    register("msgpack", "fluxqueue_msgpack.serializer:MsgpackSerializer")
