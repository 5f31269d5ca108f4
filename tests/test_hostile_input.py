"""Hostile and broken producers on the real brokers (SQLite file, private redis-server).

Each bad message is written straight into the broker, bytes as a foreign producer would
send them, next to good ones. Every bad one must end as FAILURE in the dead letters with a
reason a person understands, and the worker must serve the good ones in the same run.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from fluxqueue import FluxQueue
from fluxqueue.message import Message
from fluxqueue.security import Signer
from fluxqueue.testing import dead_letters

KEY = "hostile-input-test-key"


class RawMessage(Message):
    """A message whose bytes on the wire are exactly ``raw``: no framing, no checks."""

    raw: bytes = b""

    def encode(self) -> bytes:
        return self.raw


def raw(task_id: str, data: bytes) -> RawMessage:
    message = RawMessage(task="?", queue="default", body=b"", content_type="?", id=task_id)
    message.raw = data
    return message


def header(**changes: Any) -> dict[str, Any]:
    good = Message(task="add", queue="default", body=b"", content_type="application/json")
    fields = good.header()
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not _DROP}


_DROP = object()


def framed(head: dict[str, Any] | bytes, body: bytes) -> bytes:
    text = head if isinstance(head, bytes) else json.dumps(head).encode()
    return text + b"\n" + body


@pytest.fixture(params=["sqlite", "redis"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hostile.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url


# id -> (bytes on the wire, what the dead letter's reason must say)
def cases() -> dict[str, tuple[bytes, str]]:
    return {
        "no-header": (b"\x00\x01garbage without a newline", "no header separator"),
        "garbled-header": (b'{"id": "x", "task": \n[[1,2],{}]', "header is not valid JSON"),
        "header-not-object": (b"[1,2,3]\n[[1,2],{}]", "header must be a JSON object"),
        "missing-task": (framed(header(task=_DROP), b"[[1,2],{}]"), "has no 'task' field"),
        "mistyped-field": (framed(header(priority="high"), b"[[1,2],{}]"), "'priority' has type"),
        "nested-header": (b"[" * 50_000 + b"\n[[1,2],{}]", "header is not valid JSON"),
        "undecodable-body": (framed(header(), b"\xff\xfe{not json"), "body is not valid JSON"),
        "nested-body": (framed(header(), b"[" * 3000), "body is not valid JSON"),
        "body-shape": (framed(header(), b'{"a": 1}'), "not [args, kwargs]"),
        "unknown-task": (framed(header(task="rm-rf"), b"[[],{}]"), "unknown task 'rm-rf'"),
        "pickle-refused": (
            framed(header(content_type="application/x-python-pickle"), pickle.dumps([[1, 2], {}])),
            "content type 'application/x-python-pickle' is not accepted",
        ),
        "unknown-content-type": (
            framed(header(content_type="application/x-evil"), b"..."),
            "'application/x-evil' is not accepted",
        ),
        "wrong-arguments": (framed(header(), b'[[1],{"c":3}]'), "arguments do not match add"),
        "body-too-large": (
            framed(header(), b'[["' + b"x" * 5000 + b'"],{}]'),
            "over the max_message_size limit of 4,096 bytes",
        ),
        "message-too-large": (b"x" * (4096 + 70_000), "the message is 74,096 bytes"),
    }


def test_bad_messages_are_dead_lettered_and_the_worker_goes_on(broker_url: str) -> None:
    app = FluxQueue(broker_url, max_message_size=4096)

    @app.task(name="add", max_retries=3)
    def add(a: int, b: int) -> int:
        return a + b

    bad = cases()
    messages: list[Message] = []
    goods = []
    for index, (name, (data, _)) in enumerate(bad.items()):
        message = raw(name, data)
        messages.append(message)
        good = add.message(index, 1)
        goods.append(good)
        messages.append(good)
    app.run(app.broker.enqueue(messages))
    app.run_worker(burst=True, concurrency=4)

    assert [app.get_task(g.id).result(timeout=10) for g in goods] == [
        i + 1 for i in range(len(bad))
    ]
    letters = {d.task_id: d.reason for d in dead_letters(app)}
    assert set(letters) == set(bad)
    for name, (_, reason) in bad.items():
        assert reason in letters[name], (name, letters[name])
        state = app.run(app.broker.get_state(name))
        assert state is not None and state.status == "FAILURE", name
    stats = app.run(app.admin.stats(["default"])).queues[0]
    assert (stats.total_ready, stats.running, stats.dead) == (0, 0, len(bad))
    app.close()


def test_unsigned_and_forged_messages_on_a_signing_worker(broker_url: str) -> None:
    app = FluxQueue(broker_url, signing_key=KEY)
    app.task(name="add")(lambda a, b: a + b)
    signer = Signer(KEY)
    signed = app.named("add").message(1, 2)
    signer.sign(signed)
    forged = Message(**{f: getattr(signed, f) for f in Message.__dataclass_fields__})
    forged.id, forged.body = "forged", b"[[1000,2],{}]"
    unsigned = app.named("add").message(3, 4)
    unsigned.id = "unsigned"
    foreign = Signer("someone-else").sign(app.named("add").message(5, 6))
    foreign.id = "foreign-key"
    app.run(app.broker.enqueue([signed, forged, unsigned]))
    app.run(app.broker.enqueue([foreign]))
    app.run_worker(burst=True)
    assert app.get_task(signed.id).result(timeout=10) == 3
    letters = {d.task_id: d.reason for d in dead_letters(app)}
    assert "bad signature" in letters["forged"]
    assert "is not signed" in letters["unsigned"]
    assert "bad signature" in letters["foreign-key"]
    assert KEY not in " ".join(letters.values())
    app.close()
