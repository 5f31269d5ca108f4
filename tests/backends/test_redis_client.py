"""The Redis backend's connections (redis-py, ``client.py``) against real servers and
against servers that misbehave: one that never answers, one that is not Redis, one that
hangs up; TLS; the pool's limit; a connection killed while idle; a forked producer; and
the retired ``busy_poll`` option."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from fluxqueue import FluxQueue
from fluxqueue.backends.redis import RedisBroker
from fluxqueue.errors import BrokerConnectionError, BrokerError, ConfigurationError
from fluxqueue.message import Message
from fluxqueue.state import State
from tests.redis_server import RedisServer, free_port


def msg(queue: str = "q") -> Message:
    return Message(task="t", queue=queue, body=b"[[],{}]", content_type="application/json")


# -- servers that are not Redis ------------------------------------------------------------


@contextlib.contextmanager
def fake_server(answer: bytes | None, close: bool = False) -> Iterator[int]:
    """A TCP server on a free port that reads each request and answers ``answer`` (never,
    with None), then hangs up if ``close``. Stopped on the way out, whatever happened."""
    listener = socket.create_server(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                conn.recv(65536)
                if answer is not None:
                    conn.sendall(answer)
            if close:
                conn.close()

    thread = threading.Thread(target=serve, name="fake-redis", daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def enqueue_one(url: str) -> None:
    fq = FluxQueue(url)

    @fq.task
    def noop() -> None: ...

    try:
        noop.enqueue()
    finally:
        fq.close()


def test_a_server_that_never_answers_times_out_with_a_clear_error() -> None:
    with fake_server(None) as port:
        url = f"redis://127.0.0.1:{port}/0?socket_timeout=0.3"
        with pytest.raises(BrokerConnectionError, match=r"no reply within 0.3 s"):
            asyncio.run(RedisBroker(url).get_state("x"))
        with pytest.raises(BrokerConnectionError, match=f"127.0.0.1:{port}: no reply within"):
            enqueue_one(url)


def test_a_server_that_is_not_redis_is_a_clear_error() -> None:
    with fake_server(b"HTTP/1.1 400 Bad Request\r\n\r\n") as port:
        url = f"redis://127.0.0.1:{port}/0?socket_timeout=2"
        with pytest.raises(BrokerError, match=f"Redis at 127.0.0.1:{port} sent a reply that"):
            asyncio.run(RedisBroker(url).get_state("x"))
        with pytest.raises(BrokerError, match="sent a reply that is not RESP"):
            enqueue_one(url)


def test_a_server_that_hangs_up_is_a_clear_error() -> None:
    with fake_server(b"", close=True) as port:
        url = f"redis://127.0.0.1:{port}/0?socket_timeout=2"
        with pytest.raises(BrokerConnectionError, match=f"cannot reach Redis at 127.0.0.1:{port}"):
            asyncio.run(RedisBroker(url).get_state("x"))
        with pytest.raises(BrokerConnectionError, match=f"cannot reach Redis at 127.0.0.1:{port}"):
            enqueue_one(url)


def test_a_cluster_node_that_is_not_there_is_named() -> None:
    port = free_port()
    broker = RedisBroker(f"redis://127.0.0.1:{port}?cluster=1&socket_connect_timeout=0.5")
    with pytest.raises(BrokerConnectionError, match=f"127.0.0.1:{port}"):
        asyncio.run(broker.get_state("x"))


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

    handle = double.enqueue(21)  # the blocking producer's client

    async def work() -> None:
        broker = fq.broker
        (delivery,) = await broker.fetch(["default"], 1, 2.0)  # the fetch's own client
        assert delivery.task_id == handle.id
        await broker.ack(delivery, State("SUCCESS", b"42", 60))
        assert (await broker.get_state(handle.id)) == State("SUCCESS", b"42", 60)  # the pool
        await broker.close()

    asyncio.run(work())
    fq.close()


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


# -- the pool ------------------------------------------------------------------------------


def test_callers_wait_for_a_free_connection_then_fail_clearly(redis_url: str) -> None:
    broker = RedisBroker(f"{redis_url}?max_connections=1&socket_timeout=0.3")

    async def scenario() -> None:
        pool = broker._clients.pooled().connection_pool
        held = await pool.get_connection()  # another caller has the only connection
        with pytest.raises(BrokerConnectionError, match=r"all connections to Redis at .* busy"):
            await broker.get_state("x")
        await pool.release(held)
        assert await broker.get_state("x") is None  # free again
        await broker.close()

    asyncio.run(scenario())


def test_a_pooled_connection_killed_while_idle_is_replaced_transparently(
    redis_url: str, redis_server: RedisServer
) -> None:
    broker = RedisBroker(f"{redis_url}?health_check_interval=0.1")
    admin = redis_server.client()
    fq = FluxQueue(redis_url)

    @fq.task(name="after-kill")
    def noop() -> None: ...

    async def scenario() -> None:
        message = msg()
        await broker.enqueue([message], 60)
        admin.client_kill_filter(_type="normal", skipme=True)
        await asyncio.sleep(0.2)
        assert (await broker.get_state(message.id)) is not None
        await broker.close()

    try:
        noop.enqueue()
        asyncio.run(scenario())  # also kills the blocking producer's connection
        handle = noop.enqueue()
        assert asyncio.run(broker.get_state(handle.id)) is not None
    finally:
        fq.close()
        admin.close()


# -- retired options -------------------------------------------------------------------------


def test_busy_poll_is_accepted_with_a_warning_and_enqueues_still_land(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fluxqueue.redis"):
        fq = FluxQueue(f"{redis_url}?busy_poll=50")
    assert "option busy_poll is ignored" in caplog.text
    assert "redis-py" in caplog.text

    @fq.task(name="polled")
    def noop() -> None: ...

    handle = noop.enqueue()
    assert handle.status() == "PENDING"
    fq.close()
