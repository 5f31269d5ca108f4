"""fluxqueue's own brokers and serializers, registered like any third-party plugin.

Targets are lazy strings: nothing here imports redis or sqlite3 until a URL asks for it.
"""

from __future__ import annotations

from fluxqueue.plugins.hookspecs import Register, hookimpl


@hookimpl
def fluxqueue_register_brokers(register: Register) -> None:
    register("memory", "fluxqueue.backends.memory:MemoryBroker")
    register("redis", "fluxqueue.backends.redis:RedisBroker")
    register("rediss", "fluxqueue.backends.redis:RedisBroker")
    register("unix", "fluxqueue.backends.redis:RedisBroker")
    register("sqlite", "fluxqueue.backends.sqlite:SQLiteBroker")


@hookimpl
def fluxqueue_register_serializers(register: Register) -> None:
    register("json", "fluxqueue.serializers.json:JSONSerializer")
    register("pickle", "fluxqueue.serializers.pickle:PickleSerializer")
