"""A dead letter keeps the header, the reason and a bounded prefix of the body, on every
backend (issue 15, item 5): a huge message refused for its size does not stay whole."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fluxqueue import FluxQueue, Message
from fluxqueue.message import Delivery
from fluxqueue.security import MAX_HEADER_SIZE
from fluxqueue.worker.dead_letters import DEAD_LETTER_BODY_LIMIT, bounded_dead_letter

BODY_SIZE = 2_000_000  # far over the limit, as the 50 MB body that left 61 MB in Redis


@pytest.fixture(params=["memory", "sqlite", "redis"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'q.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url


def test_an_oversized_message_is_dead_lettered_with_a_bounded_body(broker_url: str) -> None:
    producer = FluxQueue(broker_url, max_message_size=10_000_000)
    worker = FluxQueue(producer.broker, max_message_size=1000)
    worker.task(name="echo")(lambda text: text)
    handle = producer.enqueue("echo", "x" * BODY_SIZE)
    small = producer.enqueue("echo", "small")
    worker.run_worker(burst=True)
    assert small.result(timeout=5) == "small"
    (letter,) = asyncio.run(worker.broker.dead_letters("default"))
    asyncio.run(worker.broker.close())
    assert letter.task_id == handle.id
    header_size = letter.data.index(b"\n")
    assert len(letter.data) == header_size + 1 + DEAD_LETTER_BODY_LIMIT
    kept = Message.decode(letter.data)  # the header still reads: task, queue, id
    assert (kept.task, kept.id) == ("echo", handle.id)
    assert "PayloadTooLarge" in letter.reason
    assert f"its body was cut to the first {DEAD_LETTER_BODY_LIMIT:,} of " in letter.reason
    info = worker.admin
    (listed,) = asyncio.run(info.dead_letters("default"))
    assert listed.task == "echo" and "was cut" in listed.reason
    producer.close()


def test_the_reason_gives_the_body_size() -> None:
    body = b"y" * 200_000
    delivery = Delivery("id1", "default", b'{"id":"id1"}\n' + body)
    letter, reason = bounded_dead_letter(delivery, "PayloadTooLarge: too big")
    assert letter.data == b'{"id":"id1"}\n' + body[:DEAD_LETTER_BODY_LIMIT]
    assert reason == (
        "PayloadTooLarge: too big (dead letter: its body was cut to the first "
        f"{DEAD_LETTER_BODY_LIMIT:,} of 200,000 bytes)"
    )


def test_small_messages_are_kept_whole() -> None:
    delivery = Delivery("id1", "default", b'{"id":"id1"}\n' + b"z" * 1000)
    assert bounded_dead_letter(delivery, "ValueError: no") == (delivery, "ValueError: no")


def test_bytes_without_a_header_keep_only_a_prefix() -> None:
    delivery = Delivery("id1", "default", b"g" * (MAX_HEADER_SIZE * 3))
    letter, reason = bounded_dead_letter(delivery, "MessageError: undecodable")
    assert letter.data == b"g" * DEAD_LETTER_BODY_LIMIT
    assert (
        f"it was cut to the first {DEAD_LETTER_BODY_LIMIT:,} of {MAX_HEADER_SIZE * 3:,}" in reason
    )
