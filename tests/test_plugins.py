"""Plugins load from entry points, one at a time; failures and conflicts are reported by name."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluxqueue import Broker, PluginConflictError, PluginLoadError, Serializer, hookimpl
from fluxqueue.plugins.manager import PluginManager
from fluxqueue.serializers.json import JSONSerializer


def make_distribution(root: Path, name: str, modules: dict[str, str], entry_points: str) -> None:
    """Write an installed-looking distribution (dist-info + modules) under ``root``."""
    info = root / f"{name.replace('-', '_')}-1.2.3.dist-info"  # as wheels name it
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[fluxqueue]\n{entry_points}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)


def registering_plugin(root: Path, name: str, kind: str, registration: str) -> None:
    """A distribution ``fq-<name>`` whose plugin ``<name>`` registers one ``kind`` (brokers,
    serializers) with ``register(<registration>)``."""
    source = (
        "from fluxqueue import hookimpl\n\n@hookimpl\n"
        f"def fluxqueue_register_{kind}(register):\n    register({registration})\n"
    )
    module = f"fq_test_{name}"
    make_distribution(root, f"fq-{name}", {module: source}, f"{name} = {module}")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in [m for m in sys.modules if m.startswith("fq_test_")]:
        del sys.modules[module]


GOOD = """
from fluxqueue import hookimpl

@hookimpl
def fluxqueue_register_serializers(register):
    register("upper", "fq_test_impl:Upper")
"""
IMPL = """
from fluxqueue.serializers.json import JSONSerializer

class Upper(JSONSerializer):
    name = "upper"
    content_type = "application/x-upper"
"""


def test_a_broken_plugin_is_reported_and_the_others_work(site: Path) -> None:
    make_distribution(
        site, "fq-broken", {"fq_test_broken": "import no_such_module\n"}, "broken = fq_test_broken"
    )
    make_distribution(
        site, "fq-good", {"fq_test_good": GOOD, "fq_test_impl": IMPL}, "good = fq_test_good"
    )
    manager = PluginManager()
    manager.load()
    infos = {i.name: i for i in manager.infos()}
    assert infos["broken"].status == "failed"
    assert "No module named 'no_such_module'" in (infos["broken"].error or "")
    assert infos["good"].status == "loaded" and infos["good"].serializers == ["upper"]
    assert infos["good"].version == "1.2.3" and infos["good"].distribution == "fq-good"
    assert manager.resolve("serializer", "upper", Serializer).name == "upper"  # type: ignore[type-abstract]
    assert manager.resolve("serializer", "json", Serializer) is JSONSerializer  # type: ignore[type-abstract]
    with pytest.raises(LookupError, match="plugin 'broken' failed to load"):
        manager.resolve("broker", "amqp", Broker)  # type: ignore[type-abstract]


def test_strict_mode_makes_a_broken_plugin_fatal(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_distribution(
        site,
        "fq-broken",
        {"fq_test_broken2": "raise RuntimeError('bad init')\n"},
        "broken = fq_test_broken2",
    )
    monkeypatch.setenv("FLUXQUEUE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match=r"plugin 'broken' failed to load: .*bad init"):
        PluginManager().load()


def test_two_plugins_claiming_one_name_is_an_error_naming_both(site: Path) -> None:
    registering_plugin(
        site, "clash", "serializers", '"json", "fluxqueue.serializers.json:JSONSerializer"'
    )
    manager = PluginManager()
    with pytest.raises(PluginConflictError, match="more than one plugin: 'builtins' and 'clash'"):
        manager.resolve("serializer", "json", Serializer)  # type: ignore[type-abstract]
    # the rest still works
    assert manager.resolve("serializer", "pickle", Serializer).name == "pickle"  # type: ignore[type-abstract]


def test_lazy_target_that_cannot_be_imported(site: Path) -> None:
    registering_plugin(site, "lazy", "brokers", '"nats", "fq_test_missing:NatsBroker"')
    manager = PluginManager()
    assert "nats" in manager.names("broker")  # registering imported nothing
    with pytest.raises(
        PluginLoadError,
        match="plugin 'lazy' registered broker 'nats' as 'fq_test_missing:NatsBroker'",
    ):
        manager.resolve("broker", "nats", Broker)  # type: ignore[type-abstract]


def test_target_of_the_wrong_type(site: Path) -> None:
    registering_plugin(site, "wrong", "brokers", '"weird", dict')
    with pytest.raises(PluginLoadError, match=r"not a subclass of fluxqueue\.backends\.base"):
        PluginManager().resolve("broker", "weird", Broker)  # type: ignore[type-abstract]


def test_runtime_registration_of_a_plugin_object() -> None:
    class Shout(JSONSerializer):
        name = "shout"
        content_type = "application/x-shout"

    class Plugin:
        @hookimpl
        def fluxqueue_register_serializers(self, register):  # type: ignore[no-untyped-def]
            register("shout", Shout)

    manager = PluginManager()
    name = manager.register(Plugin(), name="inline")
    assert manager.resolve("serializer", "shout", Serializer) is Shout  # type: ignore[type-abstract]
    manager.unregister(name)
    assert "shout" not in manager.names("serializer")


def test_builtins_load_through_our_own_entry_point() -> None:
    infos = {i.name: i for i in PluginManager().infos()}
    builtin = infos["builtins"]
    assert builtin.distribution == "fluxqueue" and builtin.status == "loaded"
    assert {"memory", "redis", "sqlite"} <= set(builtin.brokers)
    assert builtin.serializers == ["json", "pickle"]


def test_cli_lists_plugins_with_their_status(site: Path) -> None:
    make_distribution(
        site,
        "fq-broken",
        {"fq_test_broken3": "import no_such_module\n"},
        "broken = fq_test_broken3",
    )
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run = [sys.executable, "-m", "fluxqueue.cli", "plugins"]
    data = json.loads(
        subprocess.run([*run, "--json"], env=env, capture_output=True, text=True, check=True).stdout
    )
    by_name = {p["name"]: p for p in data}
    assert by_name["broken"]["status"] == "failed"
    assert by_name["builtins"]["status"] == "loaded"
    table = subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout
    assert table.splitlines()[0].split() == [
        "PLUGIN",
        "DISTRIBUTION",
        "VERSION",
        "STATUS",
        "PROVIDES",
    ]
    assert "failed: cannot import fq_test_broken3" in table


def test_cli_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fluxqueue.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines()[0] == "fluxqueue, version 1!0.2.0"


def test_observers_run_one_plugin_at_a_time_and_a_failing_one_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    class Broken:
        @hookimpl
        def fluxqueue_worker_stopping(self, worker_id):  # type: ignore[no-untyped-def]
            raise RuntimeError("exporter down")

    class Counting:
        @hookimpl
        def fluxqueue_worker_stopping(self, app, worker_id):  # type: ignore[no-untyped-def]
            seen.append(worker_id)

    manager = PluginManager()
    assert not manager.has_observers("fluxqueue_worker_stopping")
    manager.register(Counting(), name="counting")
    manager.register(Broken(), name="broken")  # runs first: pluggy calls the newest first
    assert manager.has_observers("fluxqueue_worker_stopping")
    assert not manager.has_observers("fluxqueue_task_enqueued")
    manager.notify("fluxqueue_worker_stopping", app=None, worker_id="w1")
    assert seen == ["w1"]
    assert "plugin 'broken' failed in fluxqueue_worker_stopping" in caplog.text
    manager.unregister("counting")
    manager.notify("fluxqueue_worker_stopping", app=None, worker_id="w2")
    assert seen == ["w1"]
    manager.unregister("broken")
    assert not manager.has_observers("fluxqueue_worker_stopping")


def test_a_registration_hook_that_raises_fails_only_its_plugin() -> None:
    class Raising:
        @hookimpl
        def fluxqueue_register_serializers(self, register):  # type: ignore[no-untyped-def]
            raise RuntimeError("no config")

    manager = PluginManager()
    manager.register(Raising(), name="raising")
    assert "json" in manager.names("serializer")
    info = {i.name: i for i in manager.infos()}["raising"]
    assert info.status == "failed"
    assert info.error == "fluxqueue_register_serializers raised RuntimeError: no config"


def test_cli_reports_an_operation_a_plugin_broker_leaves_out_in_one_line(site: Path) -> None:
    """examples/tiny_broker.py, installed as a plugin, offers no purge and no dead-letter
    listing: the CLI says so in its one error line, without a traceback."""
    registering_plugin(site, "tiny", "brokers", '"tiny", "tiny_broker:TinyBroker"')
    examples = Path(__file__).resolve().parent.parent / "examples"
    path = os.pathsep.join([str(site), str(examples), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    cli = [sys.executable, "-m", "fluxqueue.cli"]
    for args, operation in (
        (["purge", "default", "--yes"], "purging a queue"),
        (["dead", "list"], "listing dead letters"),
    ):
        done = subprocess.run(
            [*cli, *args, "-b", "tiny://cli"], env=env, capture_output=True, text=True
        )
        assert done.returncode == 1, done.stderr
        assert f"Error: the TinyBroker broker does not support {operation}" in done.stderr
        assert "Traceback" not in done.stderr
    info = subprocess.run(
        [*cli, "info", "--json", "-b", "tiny://cli"], env=env, capture_output=True, text=True
    )
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["workers"] == []
