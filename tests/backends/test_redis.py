"""The Redis broker against real, private redis-servers (see tests/redis_server.py).

Covers the whole broker contract on one server and on a three-master cluster, URL parsing,
secrets in reprs and errors, unix sockets, a server restart under a running worker, and a
worker SIGKILLed in the middle of a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluxqueue import FluxQueue
from fluxqueue._bridge import run_sync
from fluxqueue.backends.redis import RedisBroker
from fluxqueue.backends.redis import broker as broker_module
from fluxqueue.backends.redis.broker import DRAINED_FRESH
from fluxqueue.backends.redis.produce import ENQUEUE_CHUNK
from fluxqueue.errors import BrokerConnectionError, BrokerError, ConfigurationError
from fluxqueue.message import Message
from fluxqueue.state import State
from fluxqueue.testing.contract import BrokerContract, MakeBroker
from tests.redis_server import RedisCluster, RedisServer, free_port

_prefixes = itertools.count()
WORKER_SCRIPT = Path(__file__).with_name("redis_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def msg(queue: str = "q", **kw: object) -> Message:
    return Message(task="t", queue=queue, body=b"[[],{}]", content_type="application/json", **kw)  # type: ignore[arg-type]


async def put(broker: RedisBroker, *messages: Message) -> None:
    await broker.enqueue(messages, 60)


# -- the contract ------------------------------------------------------------------------


class TestRedisBroker(BrokerContract):
    @pytest.fixture
    def make_broker(self, redis_url: str) -> MakeBroker:
        def make(visibility_timeout: float = 30.0) -> RedisBroker:
            return RedisBroker(f"{redis_url}?visibility_timeout={visibility_timeout}")

        return make


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as cluster:
        yield cluster


class TestRedisClusterBroker(BrokerContract):
    """The whole contract on a three-master cluster; each test gets its own hash tag, so the
    tests' namespaces land on different masters."""

    @pytest.fixture
    def make_broker(self, redis_cluster: RedisCluster) -> MakeBroker:
        prefix = f"t{next(_prefixes)}"

        def make(visibility_timeout: float = 30.0) -> RedisBroker:
            return RedisBroker(
                f"{redis_cluster.url}&prefix={prefix}&visibility_timeout={visibility_timeout}"
            )

        return make


# -- URLs, options, secrets --------------------------------------------------------------


def test_redis_url_is_parsed_without_connecting() -> None:
    port = free_port()  # nothing listens there: the constructor must not care
    broker = RedisBroker(
        f"redis://bob:s3cret@127.0.0.1:{port}/4?prefix=app1&socket_timeout=2"
        "&socket_connect_timeout=0.5&max_connections=20&visibility_timeout=7&busy_poll=25"
    )
    kwargs = broker.config.client_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", port, 4)
    assert (kwargs["username"], kwargs["password"]) == ("bob", "s3cret")
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (2.0, 0.5)
    assert kwargs["max_connections"] == 20
    assert broker.visibility_timeout == 7.0
    assert "busy_poll" not in kwargs  # retired: accepted, ignored (test_redis_client.py)
    assert broker.keys.route == "{app1}:seq"
    assert "s3cret" not in repr(broker) and "***" in repr(broker)


def test_bare_password_and_defaults() -> None:
    broker = RedisBroker("redis://s3cret@localhost")
    kwargs = broker.config.client_kwargs
    assert kwargs["password"] == "s3cret" and "username" not in kwargs
    assert (kwargs["host"], kwargs["port"]) == ("localhost", 6379)
    assert broker.config.prefix == "fq" and not broker.config.cluster
    assert "s3cret" not in repr(broker)


def test_rediss_url_uses_tls() -> None:
    broker = RedisBroker(
        "rediss://:pw@cache.example.com:6380/1?ssl_cert_reqs=none&ssl_ca_certs=/etc/ca.pem"
    )
    kwargs = broker.config.client_kwargs
    assert kwargs["ssl"] is True and kwargs["ssl_cert_reqs"] == "none"
    assert kwargs["ssl_ca_certs"] == "/etc/ca.pem"


def test_unix_url() -> None:
    broker = RedisBroker("unix:///run/redis/redis.sock?db=3&password=pw")
    kwargs = broker.config.client_kwargs
    assert kwargs["unix_socket_path"] == "/run/redis/redis.sock"
    assert (kwargs["db"], kwargs["password"]) == (3, "pw")
    assert "pw" not in repr(broker).replace("password", "")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("redis://localhost?colour=blue&size=2", "unknown option(s) colour, size"),
        ("redis://localhost?ssl_cert_reqs=none", "unknown option(s) ssl_cert_reqs"),
        ("redis://localhost?socket_timeout=soon", "socket_timeout must be a positive"),
        ("redis://localhost?prefix={x}", "no braces"),
        ("redis://localhost/abc", "database must be a number"),
        ("redis://localhost?cluster=maybe", "cluster must be 1 or 0"),
        ("redis://localhost/2?cluster=1", "only has db 0"),
        ("unix://?db=1", "needs a socket path"),
        ("redis://localhost?visibility_timeout=-1", "visibility_timeout must be a positive"),
        ("redis://localhost?max_connections=0", "max_connections must be an integer >= 1"),
        ("redis://localhost:port", "the port is not a number"),
        ("http://localhost", "the Redis broker does not serve http"),
        ("unix:///tmp/r.sock?cluster=1", "cluster needs a host:port URL"),
        ("rediss://localhost?ssl_cert_reqs=maybe", "none, optional or required"),
    ],
)
def test_bad_urls_are_explained(url: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RedisBroker(url)
    assert complaint in str(info.value)


def test_unreachable_server_names_host_and_hides_password() -> None:
    port = free_port()
    broker = RedisBroker(f"redis://:hunter2@127.0.0.1:{port}/0?socket_connect_timeout=1")
    with pytest.raises(BrokerConnectionError) as info:
        asyncio.run(broker.fetch(["q"], 1, 0))
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "hunter2" not in str(info.value)
    with pytest.raises(BrokerConnectionError):
        asyncio.run(put(broker, msg()))
    nowhere = f"/tmp/fluxqueue-no-such-{port}.sock"
    with pytest.raises(BrokerConnectionError, match=f"unix socket {nowhere}"):
        asyncio.run(RedisBroker(f"unix://{nowhere}?password=hunter2").get_state("x"))


def test_wrong_password_is_a_broker_error_without_the_password() -> None:
    with RedisServer(password="right-one") as server:
        good = RedisBroker(server.url)
        m = msg()
        asyncio.run(put(good, m))
        assert asyncio.run(good.get_state(m.id)) is not None
        bad = RedisBroker(f"redis://:wrong-one@127.0.0.1:{server.port}/0")
        with pytest.raises(BrokerError) as info:
            asyncio.run(bad.get_state(m.id))
        assert "wrong-one" not in str(info.value) and "right-one" not in str(info.value)
        assert f"127.0.0.1:{server.port}" in str(info.value)


def test_unix_socket_server() -> None:
    with RedisServer(unix_socket=True) as server:
        broker = RedisBroker(f"unix://{server.unix_socket}?db=3&prefix=sock")

        async def scenario() -> None:
            m = msg()
            await put(broker, m)
            (d,) = await broker.fetch(["q"], 1, 1.0)
            await broker.ack(d, State("SUCCESS", b"", 60))
            await broker.close()

        asyncio.run(scenario())
        client = server.client(db=3)
        assert client.exists("{sock}:seq") == 1
        client.close()


# -- behaviour beyond the contract -------------------------------------------------------


@pytest.mark.parametrize("kind", ["single", "cluster"])
def test_bulk_enqueue_in_chunks_and_after_script_flush(
    kind: str, request: pytest.FixtureRequest
) -> None:
    if kind == "cluster":
        url = request.getfixturevalue("redis_cluster").url + f"&prefix=bulk{next(_prefixes)}"
    else:
        url = request.getfixturevalue("redis_url")
    broker = RedisBroker(url)
    total = 2 * ENQUEUE_CHUNK + 7

    async def scenario() -> None:
        await put(broker, *(msg("bulk") for _ in range(total)))
        (queue,) = (await broker.stats(["bulk"])).queues
        assert queue.total_ready == total
        # as after a restart or failover: NOSCRIPT, then EVAL
        await broker._clients.pooled().script_flush()
        await put(broker, *(msg("bulk") for _ in range(total)))
        got = await broker.fetch(["bulk"], 500, 1.0)
        assert len(got) == 500

    asyncio.run(scenario())


def test_usable_after_fork(redis_url: str) -> None:
    broker = RedisBroker(redis_url)
    m = msg("forked")
    assert run_sync(broker.get_state(m.id)) is None  # the parent has a client now
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            run_sync(put(broker, m))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [d.task_id for d in run_sync(broker.fetch(["forked"], 1, 1.0))] == [m.id]


# -- real worker processes ---------------------------------------------------------------


def start_worker(url: str, concurrency: int = 8) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(WORKER_SCRIPT), url, str(concurrency)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop_worker(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.stderr is not None
    return process.stderr.read().decode(errors="replace")


def finished(fq: FluxQueue, total: int) -> tuple[int, int]:
    """(finished, running) of the default queue, from the broker's counts."""
    (queue,) = run_sync(fq.broker.stats(["default"])).queues
    return total - queue.total_ready - queue.scheduled - queue.running, queue.running


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_sigkilled_worker_loses_nothing(redis_url: str) -> None:
    url = f"{redis_url}?visibility_timeout=2&prefix=kill"
    fq = FluxQueue(url)
    total = 200
    handles = fq.enqueue_many([fq.named("nap").message(0.03, i) for i in range(total)])
    first = start_worker(url)
    try:
        wait_for(lambda: finished(fq, total)[0] >= 40, 30, "the first worker to make progress")
        first.kill()  # SIGKILL: no hand-back, its leases just stop being renewed
        first.wait()
        done, running = finished(fq, total)
        assert done < total and running > 0, "the kill should catch tasks in flight"
        second = start_worker(url)
        try:
            results = [h.result(timeout=30) for h in handles]
        finally:
            stop_worker(second)
    finally:
        stop_worker(first)
        fq.close()
    assert results == list(range(total))


def test_worker_survives_a_redis_restart() -> None:
    with RedisServer(appendonly=True) as server:
        url = f"{server.url}?visibility_timeout=5&socket_timeout=2&socket_connect_timeout=1"
        fq = FluxQueue(url)
        total = 60
        handles = fq.enqueue_many([fq.named("nap").message(0.05, i) for i in range(total)])
        worker = start_worker(url, concurrency=4)
        try:
            wait_for(lambda: finished(fq, total)[0] >= 10, 30, "the worker to make progress")
            server.stop()  # SIGTERM: the append-only file is flushed
            time.sleep(0.5)  # the worker notices the outage
            server.start()
            results = [h.result(timeout=40) for h in handles]
        finally:
            log = stop_worker(worker)
            fq.close()
    assert results == list(range(total))
    assert "unreachable" in log, log[-2000:]


# -- the docs' examples ------------------------------------------------------------------

DOC = ROOT / "docs" / "backends" / "redis.md"
DOC_URL = "redis://127.0.0.1:6379/0"


def doc_examples() -> list[tuple[str, str]]:
    """(code, expected output) of each runnable example in docs/backends/redis.md."""
    blocks = re.findall(r"```(\w+)\n(.*?)```", DOC.read_text(), re.S)
    found = []
    for i, (lang, code) in enumerate(blocks):
        if lang == "python" and f'REDIS_URL = "{DOC_URL}"' in code:
            follows = blocks[i + 1] if i + 1 < len(blocks) else ("", "")
            found.append((code, follows[1] if follows[0] == "text" else ""))
    return found


@pytest.mark.parametrize("index", range(len(doc_examples())))
def test_docs_examples_run(index: int, redis_url: str) -> None:
    code, expected = doc_examples()[index]
    proc = subprocess.run(
        [sys.executable, "-c", code.replace(DOC_URL, redis_url)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert expected.strip() in proc.stdout, proc.stdout


def test_cancellation_is_never_lost(redis_url: str) -> None:
    """redis-py sends through asyncio.wait_for, which on Python 3.11 can drop a cancel."""

    async def scenario() -> tuple[int, int]:
        lost = cancelled = 0
        for i in range(300):
            broker = RedisBroker(redis_url)  # a fresh client: the cancel may hit the connect

            async def work(broker: RedisBroker = broker) -> None:
                await broker.get_state("x")
                await broker.get_state("y")

            task = asyncio.ensure_future(work())
            for _ in range(1 + i % 20):
                await asyncio.sleep(0)
            if task.done():
                continue
            task.cancel()
            try:
                await task
                lost += 1
            except asyncio.CancelledError:
                cancelled += 1
            await broker.close()
        return lost, cancelled

    lost, cancelled = asyncio.run(scenario())
    assert lost == 0 and cancelled > 0


def test_fetches_and_acks_survive_cancellation_a_killed_connection_and_a_script_flush(
    redis_url: str, redis_server: RedisServer
) -> None:
    """A fetch cancelled while Redis blocks on its BLPOP, a connection killed by the
    server, and a flushed script cache each cost at most one failed call, never a wrong
    reply."""
    broker = RedisBroker(redis_url)
    admin = redis_server.client()

    async def scenario() -> None:
        first = msg("lanes")
        blocked = asyncio.ensure_future(broker.fetch(["lanes"], 1, 5.0))
        await asyncio.sleep(0.2)  # now inside BLPOP, the fetch script queued behind it
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        await put(broker, first)
        (got,) = await broker.fetch(["lanes"], 1, 1.0)  # a fresh connection, right reply
        assert got.task_id == first.id

        admin.client_kill_filter(_type="normal", skipme=True)  # every client of the test
        second = msg("lanes")
        await put(broker, second)  # the pooled client reconnects by itself
        with contextlib.suppress(BrokerConnectionError):
            await broker.fetch(["lanes"], 1, 1.0)  # the fetch's client may see the kill once
        leased = await broker.fetch(["lanes"], 1, 1.0)
        if leased:  # else the failed call above had leased it (at least once)
            assert leased[0].task_id == second.id

        admin.script_flush()
        done = [(got, State("SUCCESS", b"{}\n", 60))]
        await broker.ack_many(done, [])  # NOSCRIPT, then EVAL
        assert (await broker.get_state(first.id)) == State("SUCCESS", b"{}\n", 60)
        await broker.close()

    asyncio.run(scenario())
    admin.close()


def test_an_idle_fetch_waits_and_is_woken_by_an_enqueue(redis_url: str) -> None:
    """An idle fetch blocks (BLPOP, with the fetch script behind it in the same write)
    until its timeout, or until an enqueue wakes it: then it leases what came."""
    broker = RedisBroker(redis_url)

    async def scenario() -> None:
        assert await broker.fetch(["woken"], 1, 0.3) == []  # nothing came
        await asyncio.sleep(DRAINED_FRESH * 2)  # the next fetch asks before it waits
        waiting = asyncio.ensure_future(broker.fetch(["woken"], 4, 5.0))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        message = msg("woken")
        await put(broker, message)
        (got,) = await asyncio.wait_for(waiting, 5)
        assert got.task_id == message.id
        await broker.close()

    asyncio.run(scenario())


def test_a_fetch_right_after_one_that_emptied_the_queue_waits_at_once(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle worker that just got the only message goes straight back to BLPOP (with the
    fetch behind it): one round trip per message, and a message enqueued meanwhile, or
    while it waits, is still leased at once."""
    monkeypatch.setattr(broker_module, "DRAINED_FRESH", 60.0)  # however slow this machine
    broker = RedisBroker(redis_url)

    async def scenario() -> None:
        first, second, third = msg("drained"), msg("drained"), msg("drained")
        await put(broker, first)
        (got,) = await broker.fetch(["drained"], 4, 5.0)  # fewer than asked: emptied
        assert got.task_id == first.id
        await put(broker, second)  # while the worker runs the first: a token waits
        (got,) = await broker.fetch(["drained"], 4, 5.0)  # straight to BLPOP: woken at once
        assert got.task_id == second.id
        waiting = asyncio.ensure_future(broker.fetch(["drained"], 4, 5.0))
        await asyncio.sleep(0.2)
        await put(broker, third)
        (got,) = await asyncio.wait_for(waiting, 5)
        assert got.task_id == third.id
        # A short fetch also reports when the next delayed message is due, and that
        # bounds the next wait (here 0.3 s, not the 5 s BLPOP) though nothing asks first.
        later, now = msg("drained", eta=time.time() + 0.3), msg("drained")
        await put(broker, later, now)
        (got,) = await broker.fetch(["drained"], 4, 5.0)
        assert got.task_id == now.id
        (got,) = await asyncio.wait_for(broker.fetch(["drained"], 4, 30.0), 3)
        assert got.task_id == later.id
        await broker.close()

    asyncio.run(scenario())
