"""``import fluxqueue`` is cheap: public names are imported on first use (PEP 562).

A worker process pays in resident memory for every module it imports, so modules a
process does not use (the SQLite backend in a Redis worker, the pickle serializer, ctypes
for interrupting threads) stay out of it. These tests pin that as a design property.
"""

import subprocess
import sys

import pytest

import fluxqueue


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
