"""``import fluxqueue`` is cheap: public names are imported on first use (PEP 562).

A worker process pays in resident memory for every module it imports, so modules a
process does not use (the SQLite backend in a Redis worker, the pickle serializer, ctypes
for interrupting threads, click and the other commands in a ``fluxqueue start`` worker)
stay out of it. These tests pin that as a design property.
"""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fluxqueue
from fluxqueue.app import FluxQueue


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_import_fluxqueue_imports_no_submodule() -> None:
    modules = _modules_after("import fluxqueue")
    assert {m for m in modules if m.startswith("fluxqueue.")} == set()


def test_a_name_imports_only_its_module() -> None:
    modules = _modules_after("from fluxqueue import Retry")
    assert "fluxqueue.errors" in modules
    assert "fluxqueue.app" not in modules


def test_a_redis_worker_does_not_import_what_it_never_uses() -> None:
    modules = _modules_after(
        "from fluxqueue import FluxQueue\n"
        "from fluxqueue.worker import Worker\n"
        "Worker(FluxQueue('redis://127.0.0.1:1/0'))"
    )
    assert "fluxqueue.backends.redis" in modules
    unused = {
        "fluxqueue.backends.sqlite",
        "fluxqueue.backends.memory",
        "fluxqueue.serializers.pickle",
        "sqlite3",
        "cloudpickle",
        "ctypes",
        "click",
    }
    assert modules & unused == set()


def test_a_redis_worker_talks_through_redis_py_and_hiredis(redis_url: str) -> None:
    """Since round 8 (docs/benchmarks.md) redis-py, with hiredis packing and parsing, is
    the Redis backend's one client, for the producer and the worker alike: fluxqueue's own
    protocol client is gone. What redis-py costs a worker in start-up time and memory is
    measured there; its version is given to it, so no distribution metadata is parsed."""
    modules = _modules_after(
        "import asyncio\n"
        "from fluxqueue import FluxQueue\n"
        "from fluxqueue.state import State\n"
        f"fq = FluxQueue({redis_url!r})\n"
        "@fq.task(name='t')\n"
        "def t() -> None: ...\n"
        "async def main() -> None:\n"
        "    await fq.broker.enqueue([t.message()], 60)\n"
        "    (d,) = await fq.broker.fetch(['default'], 1, 1.0)\n"
        "    await fq.broker.ack_many([(d, State('SUCCESS', b'', 60))])\n"
        "    await fq.broker.close()\n"
        "asyncio.run(main())\n"
        "t.enqueue()"
    )
    assert {"redis", "redis.asyncio", "hiredis", "fluxqueue.backends.redis.client"} <= modules
    assert not {m for m in modules if m.startswith("fluxqueue.backends.redis.")} & {
        "fluxqueue.backends.redis.wire",
        "fluxqueue.backends.redis.connection",
        "fluxqueue.backends.redis.resp",
    }
    if "email.parser" not in _modules_after("import redis.asyncio"):
        assert "email.parser" not in modules


def test_lazy_names_are_the_defining_modules_objects() -> None:
    from fluxqueue.app import FluxQueue
    from fluxqueue.errors import TaskFailed
    from fluxqueue.plugins.hookspecs import hookimpl

    assert fluxqueue.FluxQueue is FluxQueue
    assert fluxqueue.TaskFailed is TaskFailed
    assert fluxqueue.hookimpl is hookimpl
    assert set(fluxqueue.__all__) <= set(dir(fluxqueue))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        fluxqueue.Nope  # noqa: B018
    with pytest.raises(ImportError):
        exec("from fluxqueue import Nope")


def test_the_cli_package_and_the_worker_entry_point_do_not_import_click() -> None:
    modules = _modules_after("import fluxqueue.cli, fluxqueue.cli.serve, fluxqueue.cli.worker")
    assert "click" not in modules
    assert "fluxqueue.cli.commands" not in modules
    assert "fluxqueue.cli.commands" in _modules_after("from fluxqueue.cli import cli")


PROBE_TASKS = """
    import asyncio
    import os
    import sys

    from fluxqueue import FluxQueue
    from fluxqueue.plugins import get_plugin_manager

    fq = FluxQueue()

    @fq.task(name="probe")
    async def probe() -> dict:
        return {
            "selector": type(asyncio.get_running_loop()._selector).__name__,
            "pid": os.getpid(),
            "modules": sorted(sys.modules),
            "argv": sys.argv[1:],
            "handover_env": [k for k in os.environ if k.startswith("_FLUXQUEUE_START")],
            "serializers": get_plugin_manager().names("serializer"),
            "warnoptions": sys.warnoptions,
        }
"""


def test_a_started_redis_worker_runs_without_click(tmp_path: Path, redis_url: str) -> None:
    """``fluxqueue start`` hands its process (same pid) over to a worker that never loaded
    click, the other commands, or what click's parsing pulls in (difflib)."""
    (tmp_path / "probe_tasks.py").write_text(textwrap.dedent(PROBE_TASKS))
    args = ["start", "-t", "probe_tasks", "-b", redis_url, "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLUXQUEUE_", "_FLUXQUEUE"))}
    proc = subprocess.Popen(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-m", "fluxqueue.cli", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        fq = FluxQueue(redis_url)
        found = fq.enqueue("probe").result(timeout=30)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    modules = set(found["modules"])
    assert found["pid"] == proc.pid  # the same process: a supervisor's signals reach it
    if sys.platform == "linux":  # the worker's own event loop (fluxqueue.worker.loop)
        assert found["selector"] == "PreciseEpollSelector"
    assert {m for m in modules if m == "click" or m.startswith("click.")} == set()
    assert modules & {"difflib", "fluxqueue.cli.commands", "fluxqueue.cli.options"} == set()
    assert {"fluxqueue.backends.redis", "fluxqueue.cli.serve"} <= modules
    assert "fluxqueue.backends.sqlite" not in modules
    assert found["argv"] == args  # the user's code sees the command line it was given
    assert found["handover_env"] == []  # not passed on to the tasks' own subprocesses
    assert "msgpack" in found["serializers"]  # plugins still come from entry points
    assert found["warnoptions"] == ["ignore::DeprecationWarning"]  # interpreter flags kept
    # No distribution's METADATA was parsed (plugin versions are read for `fluxqueue plugins`
    # only, and redis-py is told its version), unless redis-py itself does it on import.
    if "email.parser" not in _modules_after("import redis.asyncio"):
        assert "email.parser" not in modules


def test_redis_connections_send_the_version_redis_py_would_look_up() -> None:
    import redis
    from redis.utils import get_lib_version

    from fluxqueue.backends.redis.client import _common_kwargs

    for for_asyncio in (True, False):
        found = _common_kwargs(for_asyncio)
        info = found.get("driver_info")
        version = found["lib_version"] if info is None else info.lib_version
        assert version == redis.__version__ == get_lib_version()
