"""The plugin works exactly as an installed third-party distribution would."""

import json
import subprocess
import sys
from datetime import datetime

import pytest

from fluxqueue import FluxQueue, SerializationError
from fluxqueue.plugins import get_plugin_manager


def test_round_trips_tasks_through_a_worker() -> None:
    fq = FluxQueue("memory://", serializer="msgpack")
    assert fq.serializer.name == "msgpack"

    @fq.task
    def combine(blob: bytes, items: list[int], meta: dict[str, str]) -> dict[str, object]:
        return {"blob": blob + b"!", "total": sum(items), "meta": meta}

    handle = combine(b"raw", [1, 2, 3], {"k": "v"})
    fq.run_worker(burst=True)
    assert handle.result() == {"blob": b"raw!", "total": 6, "meta": {"k": "v"}}


def test_refuses_what_msgpack_cannot_encode() -> None:
    fq = FluxQueue("memory://", serializer="msgpack")

    @fq.task
    def at(when: datetime) -> None: ...

    with pytest.raises(SerializationError, match=r"'when'.*datetime"):
        at(datetime.now())


def test_is_loaded_from_its_entry_point() -> None:
    info = next(i for i in get_plugin_manager().infos() if i.name == "msgpack")
    assert info.distribution == "fluxqueue-msgpack"
    assert info.status == "loaded"
    assert info.serializers == ["msgpack"]


def test_fluxqueue_plugins_lists_it() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fluxqueue.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    plugins = {p["name"]: p for p in json.loads(out)}
    assert plugins["msgpack"]["serializers"] == ["msgpack"]
    assert plugins["msgpack"]["version"] == "0.1.0"
    table = subprocess.run(
        [sys.executable, "-m", "fluxqueue.cli", "plugins"], capture_output=True, text=True
    ).stdout
    assert "fluxqueue-msgpack" in table and "serializer:msgpack" in table


def test_loading_the_plugin_does_not_import_msgpack() -> None:
    code = (
        "import sys; from fluxqueue import FluxQueue; FluxQueue('memory://'); "
        "import fluxqueue_msgpack; assert 'fluxqueue_msgpack.plugin' in sys.modules; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'msgpack'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
    assert FluxQueue("memory://", serializer="msgpack").serializer.name == "msgpack"
