"""``mask_url``: no byte of a password in any URL form a backend accepts (issue 15, item 1).

The property tests build URLs around arbitrary user names and passwords and check that
every character of the password lies inside a span that ``mask_url`` replaces, and, for
the well-formed (percent-encoded) forms, the exact masked text. The live tests use a real
``redis-server`` whose password holds an ``@``, as the one that leaked did.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxqueue import FluxQueue
from fluxqueue._url import mask_url, secret_spans
from fluxqueue.backends.redis.config import parse_url
from fluxqueue.errors import FluxQueueError
from tests.redis_server import RedisServer

passwords = st.text(min_size=1, max_size=40)
# A user name as people write it raw: no character that ends the userinfo.
users = st.text(
    alphabet=st.characters(blacklist_characters=":@/?#%&;", blacklist_categories=("Cs",)),
    max_size=12,
)


def encoded(text: str) -> str:
    return quote(text, safe="")


def assert_hidden(url: str, secret_start: int, secret: str) -> str:
    """Every character of ``secret`` (at ``secret_start`` in ``url``) is masked."""
    assert url[secret_start : secret_start + len(secret)] == secret
    spans = secret_spans(url)
    for index in range(secret_start, secret_start + len(secret)):
        assert any(start <= index < end for start, end in spans), (url, index, spans)
    masked = mask_url(url)
    assert "***" in masked
    return masked


@given(user=users, password=passwords)
def test_an_encoded_password_in_the_userinfo_is_masked_exactly(user: str, password: str) -> None:
    url = f"redis://{encoded(user)}:{encoded(password)}@127.0.0.1:6379/0"
    assert mask_url(url) == f"redis://{encoded(user)}:***@127.0.0.1:6379/0"
    # ... and that is the password the backend would send.
    assert parse_url(url, {}).client_kwargs["password"] == password


@given(user=users, password=passwords)
def test_a_raw_password_with_any_characters_is_masked(user: str, password: str) -> None:
    """``@``, ``:``, ``/``, ``?``, ``%``, ``#``, ``&`` typed as they are."""
    for scheme in ("redis", "rediss"):
        prefix = f"{scheme}://{user}:"
        url = f"{prefix}{password}@127.0.0.1:6379/0"
        masked = assert_hidden(url, len(prefix), password)
        assert masked.startswith(f"{scheme}://{user}:***")


@given(password=passwords)
def test_a_bare_secret_before_the_at_sign_is_masked(password: str) -> None:
    """``redis://SECRET@host``: redis-py reads a lone user as the password."""
    assert mask_url(f"redis://{encoded(password)}@h:1/0") == "redis://***@h:1/0"
    # A raw ":" would make it user:password (tested above); a raw leading "/" makes it a
    # path (sqlite:///data@2/q.db), which is why a secret is best percent-encoded.
    raw = password.replace(":", "").lstrip("/")
    if raw:
        assert_hidden(f"redis://{raw}@h:1/0", len("redis://"), raw)


@given(password=passwords, before=st.sampled_from(["?", "?db=1&", "?prefix=fq&db=2&"]))
def test_a_password_option_is_masked(password: str, before: str) -> None:
    url = f"redis://127.0.0.1:6379/0{before}password={encoded(password)}&client_name=w1"
    assert mask_url(url) == f"redis://127.0.0.1:6379/0{before}password=***&client_name=w1"
    if not re.search(r"&[A-Za-z0-9_.%+-]+=", password):  # else it is read as a new option
        raw = f"redis://127.0.0.1:6379/0{before}password={password}"
        assert_hidden(raw, len(raw) - len(password), password)


@given(first=passwords, second=passwords)
def test_every_password_of_a_host_list_is_masked(first: str, second: str) -> None:
    """Sentinel-style lists: several ``user:password@host`` joined by commas or URLs by ``;``."""
    head = "redis://:"
    url = f"{head}{first}@h1:26379,:{second}@h2:26379/0"
    assert_hidden(url, len(head), first)
    assert_hidden(url, len(f"{head}{first}@h1:26379,:"), second)
    joined = f"sentinel://:{first}@h1:26379;sentinel://:{second}@h2:26379"
    assert_hidden(joined, len("sentinel://:"), first)
    assert_hidden(joined, joined.rindex(f":{second}@") + 1, second)


@given(password=passwords)
def test_a_unix_socket_url_is_masked(password: str) -> None:
    url = f"unix://:{encoded(password)}@/run/redis.sock?db=2"
    assert mask_url(url) == "unix://:***@/run/redis.sock?db=2"
    url = f"unix:///run/redis.sock?db=2&password={encoded(password)}"
    assert mask_url(url) == "unix:///run/redis.sock?db=2&password=***"


@given(password=passwords)
def test_a_url_without_its_scheme_is_masked(password: str) -> None:
    """``scheme_of`` quotes a malformed URL in its error: everything before the last @."""
    for url in (f":{password}@127.0.0.1:6379", f"redis:/:{password}@h"):
        assert_hidden(url, url.index(password), password)
    with pytest.raises(FluxQueueError) as caught:
        FluxQueue(f"127.0.0.1:{password}@host")
    assert f":{password}@" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:p@ss-Secret99@127.0.0.1:6514/0", "redis://:***@127.0.0.1:6514/0"),
        ("redis://ada:s%40cr%2Ft%3A@h/0", "redis://ada:***@h/0"),
        ("redis://h/0?sentinel_password=x&db=1", "redis://h/0?sentinel_password=***&db=1"),
        ("redis://h/0?pass%77ord=x", "redis://h/0?pass%77ord=***"),
        ("redis://h/0?PASSWORD=x", "redis://h/0?PASSWORD=***"),
        ("sqlite:///srv/data@2/q.db?timeout=5", "sqlite:///srv/data@2/q.db?timeout=5"),
        ("redis://127.0.0.1:6379/0?client_name=w1", "redis://127.0.0.1:6379/0?client_name=w1"),
        ("memory://", "memory://"),
    ],
)
def test_examples(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# -- live: banner, worker log, reprs and errors ------------------------------------------

PASSWORD = "p@ss-Secret99"


@pytest.fixture(scope="module")
def guarded_server() -> object:
    with RedisServer(password=PASSWORD) as server:
        yield server


def test_reprs_never_show_the_password(guarded_server: RedisServer) -> None:
    app = FluxQueue(guarded_server.url)
    try:
        texts = [repr(app), repr(app.broker), str(app.broker)]
    finally:
        app.close()
    assert all(":***@" in text for text in texts), texts
    assert not any("ss-Secret99" in text or PASSWORD in text for text in texts), texts


def test_connection_errors_never_show_the_password(guarded_server: RedisServer) -> None:
    wrong = guarded_server.url.replace(PASSWORD, "wr@ng-Secret77")
    app = FluxQueue(wrong)
    with pytest.raises(FluxQueueError) as refused:
        asyncio.run(app.broker.stats())
    asyncio.run(app.broker.close())
    closed = guarded_server.url.replace(f":{guarded_server.port}", ":1")
    app = FluxQueue(closed)
    with pytest.raises(FluxQueueError) as unreachable:
        asyncio.run(app.broker.stats())
    asyncio.run(app.broker.close())
    for error in (refused.value, unreachable.value):
        text = f"{error!s} {error!r}"
        assert "Secret" not in text and "wr@ng" not in text, text


def test_the_banner_and_worker_log_never_show_the_password(
    guarded_server: RedisServer, tmp_path: Path
) -> None:
    (tmp_path / "jobs.py").write_text(
        "from fluxqueue import FluxQueue\nfq = FluxQueue()\n\n"
        "@fq.task(max_retries=0)\ndef boom() -> None:\n    raise ValueError('no')\n"
    )
    app = FluxQueue(guarded_server.url)
    app.enqueue("boom")
    app.close()
    cli = [sys.executable, "-m", "fluxqueue.cli"]
    outputs = []
    for fmt in ("text", "json"):
        done = subprocess.run(
            [*cli, "start", "-t", "jobs.py", "--burst", "--log-level", "debug",
             "--log-format", fmt, "-b", guarded_server.url],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout + done.stderr)
    text = "\n".join(outputs)
    assert f"redis://:***@127.0.0.1:{guarded_server.port}/0" in text  # the banner
    assert "Secret99" not in text and PASSWORD not in text


def test_a_logged_broker_repr_is_masked(
    guarded_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="fluxqueue")
    app = FluxQueue(guarded_server.url)
    try:
        app.run_worker(burst=True)
    finally:
        app.close()
    assert ":***@" in caplog.text
    assert "Secret99" not in caplog.text
