import os
import threading
import time
from dataclasses import replace

import pytest

from fluxqueue.errors import MessageError
from fluxqueue.message import Message, frame, new_id, unframe
from fluxqueue.state import State, encode_state, initial_state


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


# -- the wire format ---------------------------------------------------------------------

#: A message and its state records exactly as fluxqueue wrote them before round 8, when
#: hand-written encoders built them (docs/benchmarks.md): messages already in a queue, and
#: states already stored, must read the same, and new ones must be written the same.
GOLDEN_MESSAGE = (
    b'{"v":1,"id":"0123456789abcdef0123456789abcdef","task":"send-\xc3\xa9","queue":"high",'
    b'"priority":1,"eta":null,"attempt":2,"max_retries":3,"timeout":null,'
    b'"created_at":1800000000.25,"content_type":"application/json","headers":{"trace":"abc"}}'
    b'\n[1,"x"]'
)
GOLDEN_PENDING = (
    b'{"status":"PENDING","name":"send-\xc3\xa9","queue":"high","enqueued_at":1800000000.25,'
    b'"eta":null,"attempts":2,"max_retries":3}\n'
)
GOLDEN_SUCCESS = (
    b'{"status":"SUCCESS","name":"send-\xc3\xa9","queue":"high","enqueued_at":1800000000.25,'
    b'"eta":null,"attempts":3,"max_retries":3,"content_type":"application/json",'
    b'"started_at":1800000001.5,"completed_at":1800000002.0,"worker":"host:1"}\n42'
)


def test_the_wire_format_is_unchanged() -> None:
    m = Message.decode(GOLDEN_MESSAGE)
    assert (m.task, m.queue, m.priority, m.attempt, m.body) == ("send-é", "high", 1, 2, b'[1,"x"]')
    assert m.encode() == GOLDEN_MESSAGE
    assert initial_state(m, 60) == State("PENDING", GOLDEN_PENDING, 60)
    success = encode_state(
        "SUCCESS", m, ttl=60, result=b"42", content_type="application/json", attempts=3,
        started_at=1800000001.5, completed_at=1800000002.0, worker="host:1",
    )  # fmt: skip
    assert success == State("SUCCESS", GOLDEN_SUCCESS, 60)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"eta": 1_800_000_000.25, "timeout": 3},
        {"headers": {"fq-signature": "hmac-sha256:ab", "trace": "é\n\u2028", "n": [1, 2.5]}},
        {"task": 'quo"te\\back\u0000slash', "queue": "ünïcode \U0001f600"},
        {"id": "custom id with spaces", "content_type": "application/x-pickle"},
        {"created_at": 0.1 + 0.2},
    ],
)
def test_odd_fields_survive_a_round_trip(fields: dict[str, object]) -> None:
    values: dict[str, object] = {"task": "t", "queue": "q", "body": b"[[1],{}]"}
    values["content_type"] = "application/json"
    values.update(fields)
    m = Message(**values)  # type: ignore[arg-type]
    assert m.encode() == frame(m.header(), m.body)
    assert Message.decode(m.encode()) == m


def test_initial_state_is_scheduled_only_while_the_eta_lies_ahead() -> None:
    m = Message(task="t", queue="q", body=b"", content_type="c")
    assert initial_state(m).status == "PENDING"
    assert initial_state(replace(m, eta=time.time() + 60)).status == "SCHEDULED"
    assert initial_state(replace(m, eta=time.time() - 60)).status == "PENDING"


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


def test_a_header_json_cannot_carry_is_refused_as_json_dumps_refuses_it() -> None:
    m = Message("t", "q", b"[]", "application/json", headers={"when": object()})
    with pytest.raises(TypeError, match="not JSON serializable"):
        m.encode()
    loop: dict[str, object] = {}
    loop["self"] = loop
    m.headers = {"loop": loop}
    with pytest.raises(ValueError, match="Circular reference"):
        m.encode()
