"""The Redis backend: ``redis://``, ``rediss://`` and ``unix://`` broker URLs.

See ``docs/backends/redis.md`` for URLs, options, the key layout and guarantees.
"""

from fluxqueue.backends.redis.broker import RedisBroker

__all__ = ["RedisBroker"]
