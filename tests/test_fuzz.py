"""Fuzzing message decoding, the serializers and the worker with hypothesis.

The property: no input makes decoding raise anything but ``MessageError`` (or, for the
encoder, ``SerializationError``), and no input makes a worker crash, hang or leave a
message unfinished: every delivery ends in SUCCESS or FAILURE. Pickle is not fuzzed on
purpose: decoding pickle runs code, which is why workers refuse it by default.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluxqueue import FluxQueue, MessageError, SerializationError
from fluxqueue.message import Message, unframe
from fluxqueue.security import Signer
from fluxqueue.serializers.json import JSONSerializer

FIELDS = list(Message(task="t", queue="q", body=b"", content_type="x").header())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, Any]:
    """A valid header with some fields dropped, mistyped or replaced by junk."""
    good = Message(task="echo", queue="default", body=b"", content_type="application/json")
    header = good.header()
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
        action = draw(st.sampled_from(["drop", "junk"]))
        if action == "drop":
            header.pop(key, None)
        else:
            header[key] = draw(json_values)
    return header


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.tuples(
        st.lists(json_values, max_size=3), st.dictionaries(st.text(max_size=5), json_values)
    ).map(lambda p: json.dumps([p[0], p[1]]).encode()),
    st.integers(1, 3000).map(lambda n: b"[" * n),
)

wire = st.one_of(
    st.binary(max_size=300),
    st.tuples(headers(), bodies).map(lambda hb: json.dumps(hb[0]).encode() + b"\n" + hb[1]),
    st.tuples(st.binary(max_size=50), bodies).map(lambda hb: hb[0] + b"\n" + hb[1]),
)


@given(wire)
@settings(max_examples=400, deadline=None)
def test_message_decode_raises_only_message_error(data: bytes) -> None:
    try:
        message = Message.decode(data)
    except MessageError:
        return
    assert Message.decode(message.encode()) == message  # what decodes round-trips


@given(st.binary(max_size=500) | st.integers(1, 5000).map(lambda n: b"[" * n))
@settings(max_examples=300, deadline=None)
def test_unframe_and_json_loads_raise_only_message_error(data: bytes) -> None:
    for decode in (unframe, JSONSerializer().loads):
        try:
            decode(data)
        except MessageError:
            pass


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_json_round_trips_or_refuses_clearly(value: Any) -> None:
    serializer = JSONSerializer()
    try:
        data = serializer.dumps(value)
    except SerializationError as exc:
        assert "not valid JSON" in str(exc)  # NaN and infinity are refused, not coerced
        return
    assert serializer.loads(data) == value or _has_negative_zero(value)


_STANDARD = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


@given(
    st.tuples(st.lists(json_values, max_size=3), st.dictionaries(st.text(max_size=5), json_values))
)
@settings(max_examples=300, deadline=None)
def test_json_arguments_encode_as_the_standard_encoder_does(call: Any) -> None:
    """The serializer's fast path for lists writes what ``json`` writes, byte for byte."""
    value = list(call)
    try:
        expected = _STANDARD(value).encode()
    except ValueError:  # NaN or infinity
        with pytest.raises(SerializationError, match="not valid JSON"):
            JSONSerializer().dumps(value)
        return
    assert JSONSerializer().dumps(value) == expected


def test_json_refuses_a_circular_argument_as_before() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="Circular reference detected"):
        JSONSerializer().dumps([[loop], {}])


def _has_negative_zero(value: Any) -> bool:
    if isinstance(value, float):
        return value == 0 and math.copysign(1, value) < 0
    if isinstance(value, list):
        return any(_has_negative_zero(v) for v in value)
    if isinstance(value, dict):
        return any(_has_negative_zero(v) for v in value.values())
    return False


@given(headers(), bodies)
@settings(max_examples=200, deadline=None)
def test_signature_verification_never_crashes(header: dict[str, Any], body: bytes) -> None:
    try:
        message = Message.decode(json.dumps(header).encode() + b"\n" + body)
    except MessageError:
        return
    signer = Signer("fuzz-key")
    try:
        signer.verify(message)
    except MessageError:
        pass
    signer.verify(signer.sign(message))


class _Raw(Message):
    raw: bytes = b""

    def encode(self) -> bytes:
        return self.raw


@given(st.lists(wire, min_size=1, max_size=5))
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_a_worker_survives_any_delivery(batch: list[bytes]) -> None:
    app = FluxQueue("memory://", signing_key=None, max_message_size=64 * 1024)

    @app.task(name="echo", max_retries=0)
    def echo(*args: Any, **kwargs: Any) -> Any:
        return [list(args), kwargs]

    messages = []
    for index, data in enumerate(batch):
        message = _Raw(task="?", queue="default", body=b"", content_type="?", id=f"m{index}")
        message.raw = data
        messages.append(message)
    app.run(app.broker.enqueue(messages))
    app.run_worker(burst=True, concurrency=2)  # returns: nothing hangs or loops
    for index in range(len(batch)):
        state = app.run(app.broker.get_state(f"m{index}"))
        assert state is not None and state.status in ("SUCCESS", "FAILURE")
    stats = app.run(app.admin.stats(["default"])).queues[0]
    assert (stats.total_ready, stats.running) == (0, 0)
