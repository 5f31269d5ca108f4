"""The Redis producer (``RedisBroker.enqueue``, ``enqueue_sync`` and enqueue.lua).

An id enqueued again (a custom id, a copy, a message sent twice) replaces what is stored
under it; priority, FIFO and delays hold across single and batched enqueues, sync and
async; NOSCRIPT, killed connections, dead servers, forks and unix sockets are handled like
every other call; entries that older producers left on a queue's incoming list are still
delivered. Real servers, no mocks.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
from dataclasses import replace
from typing import Any

import pytest
import redis

from fluxqueue import FluxQueue, Priority
from fluxqueue.backends.redis import RedisBroker
from fluxqueue.backends.redis.produce import ENQUEUE_CHUNK
from fluxqueue.errors import BrokerConnectionError
from fluxqueue.message import Message
from fluxqueue.state import State, initial_state
from fluxqueue.task import Sender
from tests.redis_server import RedisServer, free_port


def make_app(url: str, **kw: object) -> FluxQueue:
    fq = FluxQueue(url, **kw)  # type: ignore[arg-type]

    @fq.task(name="t")
    def t(i: int) -> None: ...

    return fq


def app_and_task(url: str, **kw: object) -> tuple[FluxQueue, Sender[..., Any]]:
    """``make_app`` and its task ``t``, as a producer without the function sees it."""
    fq = make_app(url, **kw)
    return fq, fq.named("t")


def fetch_ids(fq: FluxQueue, queue: str, count: int = 100) -> list[str]:
    async def go() -> list[str]:
        return [d.task_id for d in await fq.broker.fetch([queue], count, 0)]

    return asyncio.run(go())


def ready(client: redis.Redis, queue: str, prefix: str = "fq") -> list[str]:
    """The ids waiting in ``queue``, in order: its ready set, then what single enqueues
    appended to its incoming list since a script last absorbed it (same priority here)."""
    ids = [m.decode() for m in client.zrange(f"{{{prefix}}}:q:{queue}:ready", 0, -1)]
    for entry in client.lrange(f"{{{prefix}}}:q:{queue}:incoming", 0, -1):
        ids.append(entry.decode().split(" ", 1)[1])
    return ids


@pytest.fixture
def client(redis_url: str, redis_server: RedisServer) -> redis.Redis:
    return redis_server.client()


def test_a_message_sent_twice_is_stored_once(redis_url: str, client: redis.Redis) -> None:
    fq = make_app(redis_url)
    m = fq.named("t").message(1)
    fq.enqueue_many([m, m])  # the same object twice in one call
    fq.enqueue_many([m])  # and again later
    assert ready(client, "default") == [m.id]
    # A copy sent to another queue replaces the original, in one call or in two.
    n = fq.named("t").message(2)
    moved = replace(n, queue="elsewhere")
    fq.enqueue_many([n, moved])
    later = fq.named("t").message(3)
    fq.enqueue_many([later])
    twin = copy.copy(later)
    twin.queue = "elsewhere"
    fq.enqueue_many([twin])
    assert ready(client, "default") == [m.id]
    assert sorted(ready(client, "elsewhere")) == sorted([n.id, later.id])
    assert fetch_ids(fq, "elsewhere") == [n.id, later.id]


def test_mixed_batch_keeps_replacement_priority_fifo_and_delays(redis_url: str) -> None:
    fq, t = app_and_task(redis_url)
    custom = t.options(task_id="job-1", priority=Priority.LOW).message(0)
    fq.enqueue_many([custom])
    plain = [t.message(i) for i in range(3)]
    urgent = t.options(priority=Priority.HIGH).message(9)
    delayed = t.options(delay=30).message(5)
    again = t.options(task_id="job-1", priority=Priority.CRITICAL).message(1)
    handles = fq.enqueue_many([plain[0], urgent, plain[1], delayed, again, plain[2]])
    assert [h.id for h in handles] == [m.id for m in (plain[0], urgent, plain[1])] + [
        delayed.id,
        "job-1",
        plain[2].id,
    ]
    assert fetch_ids(fq, "default") == ["job-1", urgent.id, *(m.id for m in plain)]
    assert handles[3].status() == "SCHEDULED"
    assert handles[4].status() == "PENDING"


def test_single_and_batched_enqueues_share_priority_fifo_and_records(
    redis_url: str, client: redis.Redis
) -> None:
    fq, t = app_and_task(redis_url, result_ttl=60)
    a = t.enqueue(1)
    b, c = fq.enqueue_many([t.message(2), t.message(3)])
    d = t.options(priority=Priority.HIGH).enqueue(4)
    e = t.options(priority=Priority.LOW).enqueue(5)
    f = t.enqueue(6)
    other = t.options(queue="other").enqueue(7)
    assert fetch_ids(fq, "default") == [h.id for h in (d, a, b, c, f, e)]
    single, batched = (client.hgetall(f"{{fq}}:m:{h.id}") for h in (other, c))
    assert single == {b"d": single[b"d"], b"q": b"other", b"p": b"2", b"t": b"60000"}
    assert batched == {
        b"d": batched[b"d"],
        b"q": b"default",
        b"p": b"2",
        b"t": b"60000",
        b"n": b"1",
    }
    assert client.smembers("{fq}:queues") == {b"default", b"other"}
    assert client.llen("{fq}:q:other:wake") == 1


def test_enqueue_writes_no_state_and_keeps_the_ttl_with_the_message(
    redis_url: str, client: redis.Redis
) -> None:
    with_ttl = make_app(redis_url, result_ttl=60)
    keep = make_app(redis_url, result_ttl=None)
    a = with_ttl.named("t").enqueue(1)
    b = keep.named("t").enqueue(2)
    c = keep.enqueue_many([keep.named("t").message(3)])[0]
    for h, ttl in ((a, b"60000"), (b, b"0"), (c, b"0")):
        assert not client.exists(f"{{fq}}:s:{h.id}")
        assert client.hget(f"{{fq}}:m:{h.id}", "t") == ttl
        assert h.status() == "PENDING"
    # Aborted while waiting: the ABORTED state expires after the ttl of the enqueue.
    assert a.abort() and b.abort()
    assert 0 < client.pttl(f"{{fq}}:s:{a.id}") <= 60_000
    assert client.pttl(f"{{fq}}:s:{b.id}") == -1
    assert not client.exists(f"{{fq}}:m:{a.id}", f"{{fq}}:m:{b.id}")


def test_status_of_queued_scheduled_reenqueued_and_aborted_tasks(
    redis_url: str, client: redis.Redis
) -> None:
    fq, t = app_and_task(redis_url, result_ttl=60)
    queued = t.enqueue(1)
    scheduled = t.options(delay=60).enqueue(2)
    assert (queued.status(), scheduled.status()) == ("PENDING", "SCHEDULED")
    info = queued.info()
    assert (info.name, info.queue, info.attempts, info.max_retries) == ("t", "default", 0, 3)
    assert info.enqueued_at is not None and info.eta is None
    assert scheduled.info().eta is not None
    before = asyncio.run(fq.broker.get_state(scheduled.id))
    assert before is not None and before.ttl == 60

    # Aborted while waiting: ABORTED, with the record it had while it waited.
    assert scheduled.abort()
    after = asyncio.run(fq.broker.get_state(scheduled.id))
    assert after is not None and (after.status, after.data) == ("ABORTED", before.data)
    assert scheduled.info().name == "t"
    assert not scheduled.abort()  # nothing left to abort
    assert fetch_ids(fq, "default") == [queued.id]

    # Finished, then enqueued again under its id: PENDING again, outputs left alone.
    async def finish() -> None:
        await fq.broker.set_state("job", State("SUCCESS", b"{}\n", 60))
        await fq.broker.add_output("job", fq.codec.encode_output("item"), 60)

    asyncio.run(finish())
    again = t.options(task_id="job").enqueue(3)
    assert not client.exists("{fq}:s:job")
    assert again.status() == "PENDING" and again.info().attempts == 0
    assert client.llen("{fq}:o:job") == 1 and again.info().outputs == ["item"]
    # An aborted one enqueued again is PENDING and delivered again.
    assert again.abort() and again.status() == "ABORTED"
    t.options(task_id="job").enqueue(4)
    assert again.status() == "PENDING"
    assert fetch_ids(fq, "default") == ["job"]


def test_state_of_a_message_whose_hash_is_gone_or_unreadable(
    redis_url: str, client: redis.Redis
) -> None:
    fq = make_app(redis_url)
    gone, odd = fq.named("t").enqueue(1), fq.named("t").enqueue(2)
    client.delete(f"{{fq}}:m:{gone.id}")
    assert asyncio.run(fq.broker.get_state(gone.id)) is None
    assert gone.status() == "PENDING" and gone.info().name is None  # as for an unknown id
    client.hset(f"{{fq}}:m:{odd.id}", "d", b"not a message")
    state = asyncio.run(fq.broker.get_state(odd.id))
    assert state is not None and (state.status, state.data) == ("PENDING", b"")
    assert odd.info().name is None
    purged = fq.named("t").options(queue="other").enqueue(3)
    assert fq.run(fq.admin.purge("other")) == 1
    assert asyncio.run(fq.broker.get_state(purged.id)) is None


def test_wake_tokens_stop_at_64(redis_url: str, client: redis.Redis) -> None:
    fq = make_app(redis_url)
    for i in range(70):
        fq.named("t").enqueue(i)
    assert client.llen("{fq}:q:default:wake") == 64
    client.delete("{fq}:q:default:wake")
    fq.enqueue_many([fq.named("t").message(i) for i in range(10)])
    assert client.llen("{fq}:q:default:wake") == 10
    fq.enqueue_many([fq.named("t").message(i) for i in range(100)])
    assert client.llen("{fq}:q:default:wake") == 64
    assert client.smembers("{fq}:queues") == {b"default"}


def test_sync_enqueue_survives_script_flush_and_killed_connections(
    redis_url: str, client: redis.Redis
) -> None:
    fq = make_app(redis_url)
    total = 2 * ENQUEUE_CHUNK + 7
    fq.enqueue_many([fq.named("t").message(i) for i in range(total)])
    client.script_flush()  # as after a restart or failover: NOSCRIPT, then EVAL
    fq.enqueue_many([fq.named("t").message(i) for i in range(total)])
    client.script_flush()
    fq.named("t").enqueue(0)
    client.client_kill_filter(_type="normal", skipme=True)  # as a restarted server would
    fq.named("t").enqueue(1)
    client.client_kill_filter(_type="normal", skipme=True)
    fq.enqueue_many([fq.named("t").message(i) for i in range(total)])
    assert client.zcard("{fq}:q:default:ready") == 3 * total + 2
    assert client.get("{fq}:seq") == str(3 * total + 2).encode()


def test_sync_enqueue_to_a_dead_server_names_it_and_hides_the_password() -> None:
    port = free_port()
    fq = make_app(f"redis://:hunter2@127.0.0.1:{port}/0?socket_connect_timeout=1")
    with pytest.raises(BrokerConnectionError) as info:
        fq.named("t").enqueue(1)
    assert f"127.0.0.1:{port}" in str(info.value) and "hunter2" not in str(info.value)
    with pytest.raises(BrokerConnectionError):
        fq.enqueue_many([fq.named("t").message(i) for i in range(3)])


def test_a_restarted_server_is_reached_again() -> None:
    with RedisServer() as server:
        fq = make_app(server.url)
        fq.named("t").enqueue(1)  # a connection is now idle in this process
        server.stop()
        with pytest.raises(BrokerConnectionError):
            fq.named("t").enqueue(2)
        server.start()
        h = fq.named("t").enqueue(3)  # reconnects; the new server lacks the script too
        assert h.status() == "PENDING"


def test_a_forked_child_uses_its_own_connections(redis_url: str, client: redis.Redis) -> None:
    fq = make_app(redis_url)
    first = fq.named("t").enqueue(0)  # the parent holds an idle connection
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            fq.enqueue_many([fq.named("t").message(i) for i in range(5)])
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    last = fq.named("t").enqueue(6)  # the parent's connection is intact
    ids = ready(client, "default")
    assert len(ids) == 7 and ids[0] == first.id and ids[-1] == last.id


def test_sync_enqueue_over_a_unix_socket_with_a_password() -> None:
    with RedisServer(unix_socket=True, password="s3cret") as server:
        fq = make_app(f"unix://{server.unix_socket}?db=2&password=s3cret&prefix=sock")
        handles = fq.enqueue_many([fq.named("t").message(i) for i in range(3)])
        handles.append(fq.named("t").enqueue(3))
        assert [h.status() for h in handles] == ["PENDING"] * 4
        c = server.client(db=2)
        assert sorted(ready(c, "default", "sock")) == sorted(h.id for h in handles)
        c.close()
        fq.close()


def test_async_and_sync_paths_store_the_same_records(redis_url: str, client: redis.Redis) -> None:
    broker = RedisBroker(redis_url)
    a = Message(task="t", queue="q", body=b"[[1],{}]", content_type="application/json")
    b = replace(a, id="other")
    broker.enqueue_sync([a], 60)
    asyncio.run(broker.enqueue([b], 60))
    for m in (a, b):
        stored = client.hgetall(f"{{fq}}:m:{m.id}")
        assert stored == {b"d": m.encode(), b"q": b"q", b"p": b"2", b"t": b"60000"}
        assert not client.exists(f"{{fq}}:s:{m.id}")
        assert asyncio.run(broker.get_state(m.id)) == initial_state(m, 60)


def test_entries_older_producers_left_on_the_incoming_list_are_delivered_in_order(
    redis_url: str, client: redis.Redis
) -> None:
    """Before round 8 (docs/benchmarks.md), task.enqueue() stored a message with one MULTI
    of plain commands that left ``"<priority> <id>"`` on the queue's incoming list. Such
    entries may still wait after an upgrade: stats, abort, purge, replacement and fetch
    all take them from there (absorb in _lib.lua), ahead of what came later."""
    fq, t = app_and_task(redis_url)

    def old_single_enqueue(message: Message) -> None:
        pipe = client.pipeline(transaction=True)
        pipe.hset(
            f"{{fq}}:m:{message.id}",
            mapping={"d": message.encode(), "q": message.queue, "p": message.priority, "t": 0},
        )
        pipe.rpush(f"{{fq}}:q:{message.queue}:incoming", f"{message.priority} {message.id}")
        pipe.sadd("{fq}:queues", message.queue)
        pipe.lpush(f"{{fq}}:q:{message.queue}:wake", "1")
        pipe.execute()

    first = t.message(1)
    old_single_enqueue(first)
    assert fq.get_task(first.id).status() == "PENDING"
    (queue,) = asyncio.run(fq.admin.stats(["default"])).queues
    assert queue.total_ready == 1  # counted, after being moved to the ready set
    assert client.llen("{fq}:q:default:incoming") == 0

    aborted = t.message(2)
    old_single_enqueue(aborted)
    assert fq.get_task(aborted.id).abort() is True
    assert fq.get_task(aborted.id).status() == "ABORTED"
    replaced = t.message(3)
    old_single_enqueue(replaced)
    fq.enqueue_many([replaced])  # stored again by today's producer: once, at the back
    last = t.enqueue(4)
    assert fetch_ids(fq, "default") == [first.id, replaced.id, last.id]

    doomed = [t.message(i) for i in range(3)]
    for message in doomed:
        old_single_enqueue(message)
    assert asyncio.run(fq.admin.purge("default")) == 3
    assert fetch_ids(fq, "default") == []
    assert not any(client.exists(f"{{fq}}:m:{m.id}") for m in doomed)


def test_async_single_and_batched_enqueues_keep_the_order_sent(
    redis_url: str, client: redis.Redis
) -> None:
    fq, t = app_and_task(redis_url)

    async def scenario() -> list[str]:
        await fq.broker.enqueue([t.message(1)], 60)
        await fq.broker.enqueue([t.message(2), t.message(3)], 60)
        await fq.broker.enqueue([t.message(4)], 60)
        ids = [d.task_id for d in await fq.broker.fetch(["default"], 10, 0)]
        await fq.broker.close()
        return ids

    ids = asyncio.run(scenario())
    assert [first_arg(client, i) for i in ids] == [1, 2, 3, 4]


def first_arg(client: redis.Redis, task_id: str) -> Any:
    data = client.hget(f"{{fq}}:m:{task_id}", "d")
    assert data is not None
    return json.loads(Message.decode(data).body)[0][0]
