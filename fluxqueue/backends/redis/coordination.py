"""Claims and tallies on Redis (the coordination group of the broker contract).

A mixin for :class:`~fluxqueue.backends.redis.RedisBroker`: it needs only the broker's
``_command`` (one Redis command) and its key prefix. Each primitive is one command; where
it must read and write atomically it is ``EVAL`` with a few lines of Lua, so it stays one
round trip and works on Redis Cluster (one key per call). Expiry is Redis's own (``PX`` /
``PEXPIRE``), on the server's clock. A claim lives in ``{p}:c:<key>``, a tally in
``{p}:t:<key>`` (the key layout is in ``keys.py``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from fluxqueue.backends.coordination import check_claim, check_release, check_tally

if TYPE_CHECKING:
    from fluxqueue.backends.redis.keys import Keys

__all__ = ["RedisCoordination"]

# Free, expired (Redis already deleted it) or ours: take or renew it; return the holder.
_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return holder
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_TALLY = """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('SCARD', KEYS[1])
"""


def _ms(seconds: float) -> int:
    """Whole milliseconds, at least one (PX 0 is an error; a tiny ttl still expires)."""
    return max(1, math.ceil(seconds * 1000))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisCoordination:
    """claim, release and tally for a broker with ``keys`` and ``_command``."""

    if TYPE_CHECKING:
        keys: Keys

        async def _command(self, *args: Any) -> Any: ...

    async def claim(self, key: str, token: str, ttl: float) -> str:
        check_claim(key, token, ttl)
        holder = await self._command("EVAL", _CLAIM, 1, self.keys.claim(key), token, _ms(ttl))
        return _text(holder)

    async def release(self, key: str, token: str) -> bool:
        check_release(key, token)
        return bool(await self._command("EVAL", _RELEASE, 1, self.keys.claim(key), token))

    async def tally(self, key: str, member: str, ttl: float) -> int:
        check_tally(key, member, ttl)
        return int(await self._command("EVAL", _TALLY, 1, self.keys.tally(key), member, _ms(ttl)))
