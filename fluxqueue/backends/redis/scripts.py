"""The Lua scripts that make each broker operation one atomic step on the server.

Each script is ``_lib.lua`` (shared helpers) followed by its own file. Calls go by
``EVALSHA``; a server that does not know the script yet (first use, a restart, a failover,
another cluster node) answers ``NOSCRIPT`` and the call is repeated once with ``EVAL``,
which also caches the script there. Scripts are read from the package on first use.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

from fluxqueue.backends.redis.resp import pack

__all__ = ["Script", "script"]


class Script:
    """One server-side script: its source and SHA1."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def evalsha(self, keys: list[str], args: list[Any]) -> bytes:
        """The ``EVALSHA`` command, packed."""
        return pack(("EVALSHA", self.sha, len(keys), *keys, *args))

    def eval(self, keys: list[str], args: list[Any]) -> bytes:
        """The ``EVAL`` command, packed: what follows a ``NOSCRIPT`` reply."""
        return pack(("EVAL", self.source, len(keys), *keys, *args))

    async def on_cluster(self, client: Any, keys: list[str], args: list[Any]) -> Any:
        """Run on a redis-py ``RedisCluster``; KEYS[1] routes it to its slot."""
        from redis.exceptions import NoScriptError

        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


def _read(name: str) -> str:
    return resources.files("fluxqueue.backends.redis").joinpath(name).read_text(encoding="utf-8")


@cache
def script(name: str) -> Script:
    """The script ``<name>.lua`` with the shared helpers in front."""
    return Script(name, _read("_lib.lua") + "\n" + _read(f"{name}.lua"))
