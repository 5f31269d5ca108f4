"""fluxqueue's own Redis connections (``wire.py``, ``connection.py``) against real servers:
the reply readers, TLS, the pool's limits and health checks, a server that does not speak
RESP, and that only Redis Cluster still goes through redis-py (a worker on a single server
never imports it: see ``tests/test_lazy_imports.py``)."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxqueue import FluxQueue
from fluxqueue.backends.redis import RedisBroker
from fluxqueue.backends.redis.resp import pack
from fluxqueue.backends.redis.wire import (
    BlockingConnection,
    Endpoint,
    ProtocolError,
    PyReader,
    ReplyError,
    SyncConnections,
)
from fluxqueue.errors import BrokerConnectionError, BrokerError, ConfigurationError
from fluxqueue.message import Message
from fluxqueue.state import State
from tests.redis_server import RedisServer, free_port

# -- reading replies ---------------------------------------------------------------------

replies = st.recursive(
    st.one_of(
        st.binary(max_size=40),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.none(),
        st.text(alphabet="ABCDEFGHIJ xyz", min_size=1, max_size=20).map(lambda t: ("err", t)),
        st.binary(max_size=20)
        .filter(lambda b: b"\r" not in b and b"\n" not in b)
        .map(lambda b: ("ok", b)),
    ),
    lambda children: st.lists(children, max_size=5),
    max_leaves=20,
)


def encode(reply: Any) -> bytes:
    if isinstance(reply, bytes):
        return b"$%d\r\n%b\r\n" % (len(reply), reply)
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if reply is None:
        return b"$-1\r\n"
    if isinstance(reply, tuple):
        kind, value = reply
        return b"-%s\r\n" % value.encode() if kind == "err" else b"+%b\r\n" % value
    return b"*%d\r\n" % len(reply) + b"".join(encode(item) for item in reply)


def normal(reply: Any) -> Any:
    """What a reader returns for ``reply``, with errors as (class name, text)."""
    if isinstance(reply, ReplyError):
        return ("ReplyError", str(reply))
    if isinstance(reply, list):
        return [normal(item) for item in reply]
    return reply


def expected(reply: Any) -> Any:
    if isinstance(reply, tuple):
        kind, value = reply
        return ("ReplyError", value) if kind == "err" else value
    if isinstance(reply, list):
        return [expected(item) for item in reply]
    return reply


def read_all(reader: Any, data: bytes, cuts: list[int]) -> list[Any]:
    got = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        reader.feed(data[start:cut])
        start = cut
        reply = reader.gets()
        while reply is not False:
            got.append(normal(reply))
            reply = reader.gets()
    return got


@settings(max_examples=300, deadline=None)
@given(st.lists(replies, min_size=1, max_size=5), st.lists(st.integers(0, 10_000), max_size=6))
def test_the_python_reader_reads_what_hiredis_reads_however_the_bytes_arrive(
    sent: list[Any], cuts: list[int]
) -> None:
    data = b"".join(encode(reply) for reply in sent)
    want = [expected(reply) for reply in sent]
    assert read_all(PyReader(), data, cuts) == want
    fast = hiredis.Reader(protocolError=ProtocolError, replyError=ReplyError)
    assert read_all(fast, data, cuts) == want


def test_the_python_reader_refuses_what_is_not_resp() -> None:
    reader = PyReader()
    reader.feed(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(ProtocolError, match="not the Redis protocol"):
        reader.gets()
    reader = PyReader()
    reader.feed(b"$abc\r\n")
    with pytest.raises(ProtocolError, match="not a number"):
        reader.gets()


def test_an_error_reply_names_its_code() -> None:
    error = ReplyError("NOSCRIPT No matching script. Please use EVAL.")
    assert error.code == "NOSCRIPT" and error.noscript
    assert not ReplyError("ERR wrong number of arguments").noscript


# -- a server that is not Redis ------------------------------------------------------------


def fake_server(answer: bytes | None, close: bool = False) -> Iterator[int]:
    """A TCP server on a free port that reads each request and answers ``answer`` (never,
    with None), then hangs up if ``close``."""
    listener = socket.create_server(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        held = []
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)
            conn.recv(65536)
            if answer is not None:
                conn.sendall(answer)
            if close:
                conn.close()
        for conn in held:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join()
    listener.close()


@pytest.fixture
def not_redis() -> Iterator[int]:
    yield from fake_server(b"HTTP/1.1 400 Bad Request\r\n\r\n")


@pytest.fixture
def silent() -> Iterator[int]:
    yield from fake_server(None)


def test_a_server_that_never_answers_times_out_with_a_clear_error(silent: int) -> None:
    url = f"redis://127.0.0.1:{silent}/0?socket_timeout=0.3"
    with pytest.raises(BrokerConnectionError, match=r"no reply within 0.3 s"):
        asyncio.run(RedisBroker(url).get_state("x"))
    fq = FluxQueue(url)

    @fq.task
    def noop() -> None: ...

    with pytest.raises(BrokerConnectionError, match=f"127.0.0.1:{silent}: no reply within 0.3 s"):
        noop.enqueue()


def test_a_server_that_is_not_redis_is_a_clear_error(not_redis: int) -> None:
    broker = RedisBroker(f"redis://127.0.0.1:{not_redis}/0?socket_timeout=2")
    with pytest.raises(BrokerError, match=f"Redis at 127.0.0.1:{not_redis} sent a reply that"):
        asyncio.run(broker.get_state("x"))
    fq = FluxQueue(f"redis://127.0.0.1:{not_redis}/0?socket_timeout=2")

    @fq.task
    def noop() -> None: ...

    with pytest.raises(BrokerError, match="sent a reply that is not RESP"):
        noop.enqueue()


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server() -> Iterator[RedisServer]:
    with RedisServer(tls=True) as server:
        yield server


def test_tls_end_to_end_with_the_servers_ca(tls_server: RedisServer) -> None:
    url = f"rediss://127.0.0.1:{tls_server.tls_port}/0?ssl_ca_certs={tls_server.ca_file}"
    fq = FluxQueue(url)

    @fq.task(name="tls-task")
    def double(x: int) -> int:
        return 2 * x

    handle = double.enqueue(21)  # the blocking producer's connection
    assert fq.broker._clients.endpoint.busy_poll == 0  # TLS sockets take no receive flags

    async def work() -> None:
        broker = fq.broker
        (delivery,) = await broker.fetch(["default"], 1, 2.0)  # the worker's lane
        assert delivery.task_id == handle.id
        await broker.ack(delivery, State("SUCCESS", b"42", 60))
        assert (await broker.get_state(handle.id)) == State("SUCCESS", b"42", 60)  # the pool
        await broker.close()

    asyncio.run(work())


def test_tls_refuses_a_server_it_cannot_verify(tls_server: RedisServer) -> None:
    broker = RedisBroker(f"rediss://127.0.0.1:{tls_server.tls_port}/0")  # system CAs only
    with pytest.raises(BrokerConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(broker.get_state("x"))
    unchecked = RedisBroker(f"rediss://127.0.0.1:{tls_server.tls_port}/0?ssl_cert_reqs=none")
    assert asyncio.run(unchecked.get_state("x")) is None


def test_unreadable_tls_files_are_a_configuration_error() -> None:
    broker = RedisBroker("rediss://127.0.0.1:1/0?ssl_ca_certs=/nonexistent/ca.pem")
    with pytest.raises(ConfigurationError, match="TLS files cannot be used"):
        asyncio.run(broker.get_state("x"))


# -- busy polling ----------------------------------------------------------------------------


def test_busy_polling_backs_off_from_slow_replies_and_resumes_on_quick_ones(
    redis_url: str, redis_server: RedisServer
) -> None:
    """In a burst of calls, a connection polls for each reply before it sleeps
    (``BlockingConnection.receive``); a poll that times out makes the next reads skip
    polling, one that succeeds ends that."""
    endpoint = Endpoint({"host": "127.0.0.1", "port": redis_server.port}, busy_poll=0.05)
    connection = BlockingConnection(endpoint)

    def ask(*command: Any) -> Any:
        connection.send(pack(command))
        return connection.read()

    assert ask("PING") == b"PONG"  # polled, and the reply came in time
    assert (connection.backoff, connection.skip) == (0, 0)
    # BLPOP on an empty list answers only when its 0.15 s are up: longer than the poll
    assert ask("BLPOP", "fq-test-nothing", 0.15) is None
    assert (connection.backoff, connection.skip) == (1, 1)
    assert ask("BLPOP", "fq-test-nothing", 0.15) is None  # skipped the poll: waited at once
    assert (connection.backoff, connection.skip) == (1, 0)
    assert ask("BLPOP", "fq-test-nothing", 0.15) is None  # polled in vain again
    assert (connection.backoff, connection.skip) == (3, 3)
    assert [ask("PING") for _ in range(3)] == [b"PONG"] * 3  # skipped
    assert (connection.backoff, connection.skip) == (3, 0)
    assert ask("PING") == b"PONG"  # polled, in time: polling is back for every read
    assert (connection.backoff, connection.skip) == (0, 0)
    time.sleep(0.01)  # a lone call (not in a burst) does not poll: no miss is counted
    assert ask("BLPOP", "fq-test-nothing", 0.15) is None
    assert (connection.backoff, connection.skip) == (0, 0)
    connection.close()


def test_busy_polling_is_left_to_a_thread_alone_in_a_call(redis_server: RedisServer) -> None:
    pool = SyncConnections(Endpoint({"host": "127.0.0.1", "port": redis_server.port}, 0.05))
    first, second = pool.checkout(), pool.checkout()  # two threads in a call each
    assert pool.crowded()

    def ask(*command: Any) -> Any:
        first.send(pack(command))
        return first.read()

    assert ask("PING") == b"PONG"
    assert ask("BLPOP", "fq-test-nothing", 0.15) is None  # in a burst, but not alone
    assert first.backoff == 0  # so no poll, and no miss
    pool.checkin(second)
    assert not pool.crowded()
    assert ask("BLPOP", "fq-test-nothing", 0.15) is None  # alone now: polled in vain
    assert first.backoff == 1
    pool.checkin(first)
    pool.close()
    assert (pool.made, pool.idle) == (0, [])


@pytest.mark.parametrize("option", ["", "?busy_poll=0"])
def test_enqueues_land_with_busy_polling_on_and_off(redis_url: str, option: str) -> None:
    fq = FluxQueue(redis_url + option)

    @fq.task(name="polled")
    def noop() -> None: ...

    ids = [noop.enqueue().id for _ in range(50)]

    async def states() -> list[State | None]:
        found = [await fq.broker.get_state(task_id) for task_id in ids]
        await fq.broker.close()
        return found

    assert all(state is not None for state in asyncio.run(states()))


def test_a_server_that_hangs_up_while_polled_is_a_clear_error() -> None:
    gen = fake_server(b"", close=True)
    port = next(gen)
    fq = FluxQueue(f"redis://127.0.0.1:{port}/0?socket_timeout=2&busy_poll=100000")

    @fq.task
    def noop() -> None: ...

    with pytest.raises(BrokerConnectionError, match="the server closed the connection"):
        noop.enqueue()
    gen.close()


# -- the pool ------------------------------------------------------------------------------


def test_callers_wait_for_a_free_connection_then_fail_clearly(redis_url: str) -> None:
    broker = RedisBroker(f"{redis_url}?max_connections=1&socket_timeout=0.3")

    async def scenario() -> None:
        # holds the only connection for about 0.6 s (BLPOP on an empty list)
        blocked = asyncio.ensure_future(broker._clients.call([pack(("BLPOP", "x", 0.6))], 1.0))
        await asyncio.sleep(0.05)
        with pytest.raises(BrokerConnectionError, match="all 1 connections stayed busy"):
            await broker.get_state("x")
        assert await blocked == [None]
        assert await broker.get_state("x") is None  # free again
        await broker.close()

    asyncio.run(scenario())


def test_an_idle_connection_is_reopened_after_the_health_check_interval(
    redis_url: str, redis_server: RedisServer
) -> None:
    broker = RedisBroker(f"{redis_url}?health_check_interval=0.2")

    async def client_id() -> int:
        (reply,) = await broker._clients.call([pack(("CLIENT", "ID"))])
        assert isinstance(reply, int)
        return reply

    async def scenario() -> None:
        first = await client_id()
        assert await client_id() == first  # used again at once: the same connection
        await asyncio.sleep(0.3)
        assert await client_id() != first
        await broker.close()

    asyncio.run(scenario())


def test_a_pooled_connection_killed_while_idle_is_replaced_transparently(
    redis_url: str, redis_server: RedisServer
) -> None:
    broker = RedisBroker(redis_url)
    admin = redis_server.client()

    async def scenario() -> None:
        message = Message(task="t", queue="q", body=b"[[],{}]", content_type="application/json")
        await broker.enqueue([message], 60)
        admin.client_kill_filter(_type="normal", skipme=True)
        await asyncio.sleep(0.05)
        assert (await broker.get_state(message.id)) is not None
        await broker.close()

    asyncio.run(scenario())
    admin.close()


# -- memory ----------------------------------------------------------------------------------


def test_a_cluster_url_still_uses_redis_py() -> None:
    port = free_port()
    broker = RedisBroker(f"redis://127.0.0.1:{port}?cluster=1&socket_connect_timeout=0.5")
    with pytest.raises(BrokerConnectionError, match=f"127.0.0.1:{port}"):
        asyncio.run(broker.get_state("x"))
    assert "redis.asyncio.cluster" in sys.modules
