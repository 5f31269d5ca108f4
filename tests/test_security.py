"""Signing, key rotation, size limits, pickle refusal, and secrets kept out of every output."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fluxqueue import (
    ConfigurationError,
    FluxQueue,
    PayloadTooLarge,
    SerializationError,
    SignatureError,
    Status,
    TaskFailed,
    TaskHandle,
)
from fluxqueue.message import Message
from fluxqueue.security import SIGNATURE_HEADER, Signer
from fluxqueue.testing import dead_letters, run_all

KEY = "s3cret-signing-key-0123456789"
OLD_KEY = "old-signing-key-abcdef"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "FLUXQUEUE_SIGNING_KEY",
        "FLUXQUEUE_SIGNING_KEYS_OLD",
        "FLUXQUEUE_MAX_MESSAGE_SIZE",
        "FLUXQUEUE_MAX_RESULT_SIZE",
    ):
        monkeypatch.delenv(name, raising=False)


def pair(producer_key: str | None, worker_key: str | None, **worker: Any) -> tuple[Any, Any]:
    """A producer app and a worker app on one memory broker, each with its own key."""
    producer = FluxQueue("memory://", signing_key=producer_key)
    consumer = FluxQueue(producer.broker, signing_key=worker_key, **worker)

    @consumer.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    return producer, consumer


def put(app: FluxQueue, message: Message) -> None:
    """Store a message as it is, bypassing the app's signing (a foreign producer)."""
    app.run(app.broker.enqueue([message]))


def json_message(task: str, body: bytes, **kw: Any) -> Message:
    return Message(task=task, queue="default", body=body, content_type="application/json", **kw)


# -- signing ------------------------------------------------------------------------


def test_signed_messages_run_and_carry_an_hmac() -> None:
    producer, consumer = pair(KEY, KEY)
    message = producer.named("add").message(1, 2)
    handle = producer.enqueue_many([message])[0]
    assert message.headers[SIGNATURE_HEADER].startswith("hmac-sha256:")
    run_all(consumer)
    assert handle.result(timeout=5) == 3


def test_a_worker_with_a_key_refuses_unsigned_messages_and_goes_on() -> None:
    producer, consumer = pair(None, KEY)
    unsigned = producer.enqueue("add", 1, 2)
    signed = FluxQueue(producer.broker, signing_key=KEY).enqueue("add", 2, 3)
    run_all(consumer)
    with pytest.raises(TaskFailed) as caught:
        unsigned.result(timeout=5)
    assert caught.value.error_type == "fluxqueue.errors.SignatureError"
    assert "is not signed" in caught.value.error_message
    assert signed.result(timeout=5) == 5
    (letter,) = dead_letters(consumer)
    assert letter.task_id == unsigned.id and "not signed" in letter.reason


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda m: Message(**{**_fields(m), "body": b"[[100,2],{}]"}), id="body"),
        pytest.param(lambda m: Message(**{**_fields(m), "task": "other"}), id="task"),
        pytest.param(lambda m: Message(**{**_fields(m), "max_retries": 99}), id="header"),
        pytest.param(
            lambda m: Message(**{**_fields(m), "headers": {SIGNATURE_HEADER: "hmac-sha256:00"}}),
            id="signature",
        ),
        pytest.param(
            lambda m: Message(**{**_fields(m), "headers": {SIGNATURE_HEADER: 42}}), id="garbled"
        ),
    ],
)
def test_tampered_messages_are_dead_lettered(tamper: Any) -> None:
    producer, consumer = pair(KEY, KEY)
    original = producer.named("add").message(1, 2)
    Signer(KEY).sign(original)
    forged = tamper(original)
    put(producer, forged)
    run_all(consumer)
    state = consumer.get_task(forged.id).info()
    assert state.status == Status.FAILURE
    assert state.error is not None and "signature" in state.error
    assert "SignatureError" in dead_letters(consumer)[0].reason


def _fields(m: Message) -> dict[str, Any]:
    return {f: getattr(m, f) for f in Message.__dataclass_fields__}


def test_a_worker_without_a_key_accepts_signed_and_unsigned() -> None:
    producer, consumer = pair(KEY, None)
    signed = producer.enqueue("add", 1, 1)
    unsigned = FluxQueue(producer.broker).enqueue("add", 2, 2)
    run_all(consumer)
    assert (signed.result(timeout=5), unsigned.result(timeout=5)) == (2, 4)


def test_signature_survives_decoding_and_encoding_again() -> None:
    signer = Signer(KEY)
    message = signer.sign(json_message("t", b"[[1],{}]", headers={"trace": "abc", "z": 1}))
    again = Message.decode(message.encode())
    signer.verify(again)  # a handback re-encodes the decoded message
    with pytest.raises(SignatureError, match="bad signature"):
        Signer("another-key").verify(again)


def test_key_rotation_old_keys_verify_the_new_one_signs() -> None:
    producer, _ = pair(OLD_KEY, None)
    old_signed = producer.enqueue("add", 1, 2)
    rotated = FluxQueue(producer.broker, signing_key=KEY, verify_keys=[OLD_KEY])
    rotated.task(name="add")(lambda a, b: a + b)
    new_signed = rotated.enqueue("add", 3, 4)
    run_all(rotated)
    assert (old_signed.result(timeout=5), new_signed.result(timeout=5)) == (3, 7)

    # Once the old key is dropped, what it signed is refused.
    late = producer.enqueue("add", 5, 6)
    new_only = FluxQueue(producer.broker, signing_key=KEY)
    new_only.task(name="add")(lambda a, b: a + b)
    run_all(new_only)
    with pytest.raises(TaskFailed, match="bad signature"):
        late.result(timeout=5)


def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXQUEUE_SIGNING_KEY", KEY)
    monkeypatch.setenv("FLUXQUEUE_SIGNING_KEYS_OLD", f"{OLD_KEY}, another-old")
    app = FluxQueue("memory://")
    assert app.signer is not None and app.signer.key_count == 3
    message = FluxQueue(app.broker, signing_key=OLD_KEY).named("x").message()
    FluxQueue(app.broker, signing_key=OLD_KEY).signer.sign(message)  # type: ignore[union-attr]
    app.signer.verify(message)
    assert FluxQueue("memory://", signing_key=KEY, verify_keys=[]).signer.key_count == 1  # type: ignore[union-attr]


def test_verify_keys_without_a_signing_key_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError, match="need a signing_key"):
        FluxQueue("memory://", verify_keys=[OLD_KEY])
    monkeypatch.setenv("FLUXQUEUE_SIGNING_KEYS_OLD", OLD_KEY)
    with pytest.raises(ConfigurationError, match="FLUXQUEUE_SIGNING_KEY"):
        FluxQueue("memory://")
    with pytest.raises(ConfigurationError, match="non-empty"):
        Signer("")


def test_retries_are_signed_again() -> None:
    app = FluxQueue("memory://", signing_key=KEY)
    calls: list[int] = []

    @app.task(max_retries=2, backoff=0)
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("not yet")
        return "done"

    handle = flaky()
    run_all(app)
    assert handle.result(timeout=5) == "done"
    assert len(calls) == 3 and handle.info().attempts == 3


def test_retry_dead_signs_again_and_never_launders_a_forgery() -> None:
    app = FluxQueue("memory://", signing_key=KEY)
    fail = [True]

    @app.task(max_retries=0)
    def once() -> str:
        if fail[0]:
            raise RuntimeError("first time")
        return "ok"

    genuine = once()
    forged = json_message("once", b"[[],{}]")  # unsigned: dead-lettered by the worker
    put(app, forged)
    run_all(app)
    assert {d.task_id for d in dead_letters(app)} == {genuine.id, forged.id}

    fail[0] = False
    retried, skipped = app.run(app.admin.retry_dead())
    assert (retried, skipped) == (1, 1)
    run_all(app)
    assert genuine.result(timeout=5) == "ok"
    assert [d.task_id for d in dead_letters(app)] == [forged.id]


def test_signature_check_comes_before_unpickling(tmp_path: Path) -> None:
    """A forged pickle would run code while it is decoded; it must never be decoded."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> Any:
            return (open, (str(marker), "w"))

    body = pickle.dumps([[Exploit()], {}])
    app = FluxQueue("memory://", signing_key=KEY, accept=["pickle"])
    app.task(name="victim")(lambda x: x)
    message = Message(
        task="victim", queue="default", body=body, content_type="application/x-python-pickle"
    )
    put(app, message)
    run_all(app)
    assert not marker.exists()
    assert "not signed" in dead_letters(app)[0].reason

    # Without a key, the default (json only) refuses the content type without decoding it.
    plain = FluxQueue("memory://")
    plain.task(name="victim")(lambda x: x)
    put(plain, message)
    run_all(plain)
    assert not marker.exists()
    assert "is not accepted" in dead_letters(plain)[0].reason


# -- size limits --------------------------------------------------------------------


def test_oversized_arguments_are_refused_at_enqueue() -> None:
    app = FluxQueue("memory://", max_message_size=1000)

    @app.task
    def upload(data: str) -> None: ...

    with pytest.raises(PayloadTooLarge) as caught:
        upload("x" * 2000)
    assert isinstance(caught.value, SerializationError)
    assert caught.value.limit == 1000 and caught.value.size > 2000
    assert "max_message_size limit of 1,000 bytes" in str(caught.value)
    assert "'upload'" in str(caught.value)
    upload("x" * 500)  # under the limit: fine


def test_size_limits_from_the_environment_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    app = FluxQueue("memory://")
    assert (app.max_message_size, app.max_result_size) == (512 * 1024, 512 * 1024)
    monkeypatch.setenv("FLUXQUEUE_MAX_MESSAGE_SIZE", "2KiB")
    monkeypatch.setenv("FLUXQUEUE_MAX_RESULT_SIZE", "0")
    app = FluxQueue("memory://")
    assert (app.max_message_size, app.max_result_size) == (2048, None)
    assert FluxQueue("memory://", max_message_size=10).max_message_size == 10
    monkeypatch.setenv("FLUXQUEUE_MAX_MESSAGE_SIZE", "lots")
    with pytest.raises(ConfigurationError, match="FLUXQUEUE_MAX_MESSAGE_SIZE"):
        FluxQueue("memory://")
    with pytest.raises(ConfigurationError):
        FluxQueue("memory://", max_message_size=-1)


def test_an_oversized_foreign_message_is_dead_lettered() -> None:
    app = FluxQueue("memory://", max_message_size=1000)
    app.task(name="echo")(lambda x: x)
    big = json_message("echo", b'[["' + b"x" * 5000 + b'"],{}]')
    put(app, big)
    good = app.enqueue("echo", "small")
    run_all(app)
    assert good.result(timeout=5) == "small"
    (letter,) = dead_letters(app)
    assert "PayloadTooLarge" in letter.reason and "max_message_size" in letter.reason


def too_large(app: FluxQueue, handle: TaskHandle[Any]) -> str:
    """Run ``handle``'s task: it must fail for good, on its first attempt, because of a
    size limit. Returns the error message."""
    run_all(app)
    with pytest.raises(TaskFailed) as caught:
        handle.result(timeout=5)
    assert caught.value.error_type == "fluxqueue.errors.PayloadTooLarge"
    assert handle.info().attempts == 1
    return caught.value.error_message


def test_an_oversized_result_fails_without_retrying() -> None:
    app = FluxQueue("memory://", max_result_size=1000)

    @app.task(max_retries=3)
    def big() -> str:
        return "y" * 5000

    handle = big()
    assert "max_result_size limit of 1,000 bytes" in too_large(app, handle)


def test_an_oversized_streamed_item_fails_the_task() -> None:
    app = FluxQueue("memory://", max_result_size=1000)

    @app.task(max_retries=3)
    def stream() -> Iterator[str]:
        yield "small"
        yield "z" * 5000

    handle = stream()
    assert "an item streamed by task 'stream'" in too_large(app, handle)
    assert handle.info().outputs == ["small"]


# -- secrets ------------------------------------------------------------------------


def test_keys_never_appear_in_reprs_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="fluxqueue")
    producer, consumer = pair(OLD_KEY, KEY, verify_keys=[OLD_KEY + "x"])
    late = producer.enqueue("add", 1, 2)
    run_all(consumer)
    with pytest.raises(TaskFailed) as caught:
        late.result(timeout=5)
    texts = [repr(consumer), repr(consumer.signer), str(caught.value), caplog.text]
    texts += [d.reason for d in dead_letters(consumer)]
    try:
        Signer(KEY).verify(json_message("t", b"[]"))
    except SignatureError as exc:
        texts.append(str(exc))
    joined = "\n".join(texts)
    assert "bad signature" in joined
    assert KEY not in joined and OLD_KEY not in joined


def test_no_secret_in_cli_output_or_worker_logs(tmp_path: Path) -> None:
    """`fluxqueue info`, `dead list`, a worker's log and a refused password: no secret."""
    import os
    import subprocess
    import sys

    from tests.redis_server import RedisServer

    password = "redis-pass-Zq8xY"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXQUEUE_")}
    env.update(FLUXQUEUE_SIGNING_KEY=KEY, FLUXQUEUE_SIGNING_KEYS_OLD=OLD_KEY)
    (tmp_path / "jobs.py").write_text(
        "from fluxqueue import FluxQueue\nfq = FluxQueue()\n\n"
        "@fq.task(max_retries=0)\ndef boom() -> None:\n    raise ValueError('no')\n"
    )
    with RedisServer(password=password) as server:
        url = server.url
        cli = [sys.executable, "-m", "fluxqueue.cli"]

        def run(*args: str, broker: str = url) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*cli, *args, "-b", broker], cwd=tmp_path, env=env,
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip

        outputs = [run("enqueue", "boom"), run("enqueue", "nope")]
        unsigned = FluxQueue(url)
        unsigned.enqueue("boom")
        unsigned.close()
        outputs.append(run("start", "-t", "jobs.py", "--burst", "--log-level", "debug"))
        outputs += [run("info"), run("dead", "list"), run("info", "--json")]
        outputs.append(run("info", broker=url.replace(password, "wrong-" + password[::-1])))
    text = "\n".join(o.stdout + o.stderr for o in outputs)
    assert "not signed" in text and "unknown task 'nope'" in text  # the worker did run
    assert outputs[-1].returncode != 0  # the wrong password was refused
    for secret in (password, KEY, OLD_KEY):
        assert secret not in text


def test_a_signed_task_enqueued_by_name_survives_a_hand_back() -> None:
    """The worker fills in a by-name task's own settings; handing it back at shutdown must
    not break its signature."""
    import asyncio

    from fluxqueue.worker import Worker

    producer = FluxQueue("memory://", signing_key="k1")
    worker_app = FluxQueue(producer.broker, signing_key="k1")
    runs: list[int] = []

    @worker_app.task(name="slow", max_retries=0)
    async def slow() -> str:
        runs.append(1)
        await asyncio.sleep(0.5 if len(runs) == 1 else 0)
        return "done"

    handle = producer.enqueue("slow")

    async def first_worker_stops_early() -> None:
        worker = Worker(worker_app, handle_signals=False, shutdown_timeout=0.1)
        serving = asyncio.ensure_future(worker.run())
        while not runs:
            await asyncio.sleep(0.01)
        worker.stop()
        await serving

    asyncio.run(first_worker_stops_early())
    worker_app.run_worker(burst=True)
    assert handle.result(timeout=5) == "done"
    assert len(runs) == 2
