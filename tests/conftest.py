"""Shared fixtures. Redis ones start a private redis-server (never the machine's 6379).

* ``redis_server`` (session): a running :class:`tests.redis_server.RedisServer`
  (``.host``, ``.port``, ``.url``, ``.client()``).
* ``redis_url`` (per test): a URL on that server whose database was just emptied.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = redis_server.client()
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server.url
