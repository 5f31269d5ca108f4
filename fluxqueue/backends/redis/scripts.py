"""The Lua scripts that make each broker operation one atomic step on the server.

Each script is ``_lib.lua`` (shared helpers) followed by its own file. Calls go by
``EVALSHA``; a server that does not know the script yet (first use, a restart, a failover,
another cluster node) answers ``NOSCRIPT`` and the call is repeated once with ``EVAL``,
which also caches the script there. Scripts are read from the package on first use.

redis-py's own ``Script`` objects do the same but are bound to one client, and fluxqueue
has a client per event loop plus a blocking one: these are shared by all of them. On a
single server the broker sends the ``EVALSHA`` commands itself, pipelined (see
``client.call``); :meth:`Script.run` serves a cluster.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["Script", "needing_eval", "script"]


class Script:
    """One server-side script: its source and SHA1. ``keys`` is always the namespace's
    routing key (see keys.py), ``args`` the script's ARGV."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def run(self, client: Any, keys: list[str], args: list[Any]) -> Any:
        """Run on a redis-py asyncio client (a ``RedisCluster``)."""
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


@cache
def _no_script() -> type[Exception]:
    from redis.exceptions import NoScriptError

    return NoScriptError


def needing_eval(replies: list[Any]) -> list[int]:
    """Which script calls among ``replies`` met a server without the script (``NOSCRIPT``:
    first use, a restart, a failover) and must be sent again with ``EVAL``; any other
    error reply is raised."""
    no_script = _no_script()
    again = []
    for i, reply in enumerate(replies):
        if isinstance(reply, Exception):
            if not isinstance(reply, no_script):
                raise reply
            again.append(i)
    return again
