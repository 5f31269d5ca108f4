import copy
import os
import pickle
import threading
from dataclasses import fields, replace
from typing import Any

import pytest

from fluxqueue.errors import MessageError
from fluxqueue.message import Message, frame, new_id, unframe
from fluxqueue.state import encode_state, initial_state, success_state


def test_round_trip_keeps_every_field() -> None:
    m = Message(
        task="t",
        queue="q",
        body=b"\x00\nbinary",
        content_type="x/y",
        priority=1,
        eta=12.5,
        attempt=2,
        max_retries=5,
        timeout=3.0,
        headers={"trace": "abc"},
    )
    assert Message.decode(m.encode()) == m


def test_header_is_readable_without_the_serializer() -> None:
    header, body = unframe(Message(task="t", queue="q", body=b"\xff", content_type="c").encode())
    assert header["task"] == "t" and body == b"\xff"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"garbage", "no header separator"),
        (b"{not json\n", "header is not valid JSON"),
        (b"[1]\n", "must be a JSON object"),
        (b'{"id": "x"}\n', "no 'task' field"),
        (frame({"id": 1}, b""), "'id' has type int"),
        (b"\xff\xfe\n", "header is not valid JSON"),
    ],
)
def test_corrupt_messages_raise_message_error(data: bytes, error: str) -> None:
    with pytest.raises(MessageError, match=error):
        Message.decode(data)


def test_mistyped_field() -> None:
    header, body = unframe(Message(task="t", queue="q", body=b"", content_type="c").encode())
    header["priority"] = "high"
    with pytest.raises(MessageError, match="'priority' has type str"):
        Message.decode(frame(header, body))


# -- the producer's fast encoders ------------------------------------------------------

FAST_ENCODE_CASES = [
    {},
    {"eta": 1_800_000_000.25, "timeout": 3},
    {"eta": 5, "priority": 0, "attempt": 4, "max_retries": 0, "timeout": 2.5},
    {"headers": {"fq-signature": "hmac-sha256:ab", "trace": "é\n\u2028", "n": [1, 2.5]}},
    {"task": 'quo"te\\back\u0000slash', "queue": "ünïcode \U0001f600"},
    {"id": "custom id with spaces", "content_type": "application/x-pickle"},
    {"created_at": 0.1 + 0.2},
    {"priority": True},  # not an int for JSON: the fallback writes `true`
    {"eta": float("nan")},  # json writes NaN: the fallback keeps that
    {"timeout": float("inf")},
]


def _message(fields: dict[str, object]) -> Message:
    values: dict[str, object] = {"task": "t", "queue": "q", "body": b"[[1],{}]"}
    values["content_type"] = "application/json"
    values.update(fields)
    return Message(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("fields", FAST_ENCODE_CASES)
def test_encode_is_byte_identical_to_framing_the_header(fields: dict[str, object]) -> None:
    m = _message(fields)
    assert m.encode() == frame(m.header(), m.body)


def test_cached_header_parts_never_stand_for_another_type() -> None:
    plain = Message(task="t", queue="q", body=b"", content_type="c", priority=1, attempt=0)
    assert plain.encode() == frame(plain.header(), plain.body)  # now cached
    assert initial_state(plain) == encode_state("PENDING", plain)  # this one too
    for odd in ({"priority": True}, {"priority": 1.0}, {"attempt": False}, {"max_retries": 3.0}):
        m = replace(plain, **odd)  # type: ignore[arg-type]
        assert m.encode() == frame(m.header(), m.body)
        state = initial_state(m, 5)
        assert state == encode_state(state.status, m, ttl=5)


@pytest.mark.parametrize("fields", FAST_ENCODE_CASES)
def test_initial_state_is_byte_identical_to_encode_state(fields: dict[str, object]) -> None:
    m = _message(fields)
    for ttl in (None, 60.0):
        state = initial_state(m, ttl)
        assert state == encode_state(state.status, m, ttl=ttl)
        assert state.status == ("SCHEDULED" if m.is_delayed() else "PENDING")


@pytest.mark.parametrize("fields", FAST_ENCODE_CASES)
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"attempts": 2, "worker": "host:1:abé", "content_type": "application/x-pickle"},
        {"started_at": float("nan")},  # not plain: the fallback keeps json's NaN
        {"attempts": True},
    ],
)
def test_success_state_is_byte_identical_to_encode_state(
    fields: dict[str, object], extra: dict[str, object]
) -> None:
    m = _message(fields)
    meta: dict[str, Any] = {
        "content_type": "application/json", "attempts": 1, "started_at": 1_800_000_000.5,
        "completed_at": 1_800_000_001.0, "worker": "w",
    }  # fmt: skip
    meta.update(extra)
    for _ in range(2):  # built, then from the cache
        for ttl in (None, 60.0):
            fast = success_state(m, ttl=ttl, result=b"[1]", **meta)
            assert fast == encode_state("SUCCESS", m, ttl=ttl, result=b"[1]", **meta)


def test_new_ids_are_32_hex_digits_and_distinct() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_ids_drawn_ahead_are_never_handed_out_twice() -> None:
    """Across threads, and across a fork: the child drops the ids its parent drew ahead."""
    new_id()  # this process now holds ids drawn ahead
    drawn: list[list[str]] = [[] for _ in range(4)]

    def draw(out: list[str]) -> None:
        out.extend(new_id() for _ in range(2000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in drawn]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for out in drawn for i in out]
    assert len(set(everything)) == len(everything)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, "".join(new_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    child = {text[i : i + 32] for i in range(0, len(text), 32)}
    assert len(child) == 100
    assert not child & {new_id() for _ in range(100)}


def test_a_minted_id_claim_is_spent_once_and_never_copied() -> None:
    m = Message(task="t", queue="q", body=b"", content_type="c")
    assert not m.spend_minted()  # only mark_minted() makes a claim
    m.mark_minted()
    copies = [copy.copy(m), copy.deepcopy(m), pickle.loads(pickle.dumps(m)), replace(m)]
    copies.append(Message(**{f.name: getattr(m, f.name) for f in fields(m)}))
    assert all(c == m and not c.spend_minted() for c in copies)
    assert m.spend_minted()
    assert not m.spend_minted()  # enqueued once: the next enqueue takes the general path
    m.mark_minted()
    m.id = "chosen-by-the-caller"  # another id: the claim no longer applies
    assert not m.spend_minted()
