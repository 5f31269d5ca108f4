"""The Redis broker against a real, private redis-server (see tests/redis_server.py)."""

from __future__ import annotations

import itertools

import pytest

from fluxqueue.backends.redis import RedisBroker
from fluxqueue.testing.contract import BrokerContract, MakeBroker
from tests.redis_server import RedisServer

_prefixes = itertools.count()


class TestRedisBroker(BrokerContract):
    @pytest.fixture
    def make_broker(self, redis_url: str) -> MakeBroker:
        def make(visibility_timeout: float = 30.0) -> RedisBroker:
            return RedisBroker(f"{redis_url}?visibility_timeout={visibility_timeout}")

        return make
