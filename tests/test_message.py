import pytest

from fluxqueue.errors import MessageError
from fluxqueue.message import Message, frame, unframe


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
