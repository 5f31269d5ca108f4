"""Finding the tasks a worker serves, the way FluxQueue's Rust worker does.

Each tasks module path (``myapp.tasks`` or a file such as ``myapp/tasks.py``) is imported with
the working directory importable. In each module, the names in ``__all__`` (or, without
``__all__``, every module attribute) are inspected; an object is a task when it is a
fluxqueue :class:`~fluxqueue.task.Task` (it has ``task_name`` and ``queue``). The worker
serves the tasks whose ``queue`` is one of its queues. The broker and serializer come from
the :class:`~fluxqueue.FluxQueue` the tasks belong to.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fluxqueue.errors import ConfigurationError, DuplicateTaskError, FluxQueueError
from fluxqueue.task import Task

if TYPE_CHECKING:
    from fluxqueue.app import FluxQueue

__all__ = ["Discovery", "discover", "import_tasks_module", "tasks_in"]

log = logging.getLogger("fluxqueue.cli")


@dataclass
class Discovery:
    """What the tasks modules hold: their app and the tasks found, by queue."""

    app: FluxQueue
    modules: list[str]
    by_queue: dict[str, list[Task[Any, Any]]] = field(default_factory=dict)

    @property
    def tasks(self) -> list[Task[Any, Any]]:
        return [task for tasks in self.by_queue.values() for task in tasks]


def module_name_for(path: str, cwd: Path | None = None) -> tuple[str, Path | None]:
    """The dotted name to import for a module path, and a directory to make importable.

    ``myapp.tasks`` is returned as is. A file or directory path (``myapp/tasks.py``,
    ``./tasks``) under the working directory becomes its dotted name, so relative imports
    inside the package work; one outside it is imported from its own directory.
    """
    looks_like_path = path.endswith(".py") or os.sep in path or "/" in path
    if not looks_like_path:
        return path, None
    cwd = (cwd or Path.cwd()).resolve()
    target = Path(path)
    target = (target if target.is_absolute() else cwd / target).resolve()
    if not target.exists():
        raise ConfigurationError(f"tasks module path {path!r}: no such file or directory")
    if target.suffix == ".py":
        target = target.with_suffix("")
    if target.name == "__init__":
        target = target.parent
    try:
        parts = target.relative_to(cwd).parts
        base: Path | None = None
    except ValueError:
        parts, base = (target.name,), target.parent
    if not parts or not all(part.isidentifier() for part in parts):
        raise ConfigurationError(
            f"tasks module path {path!r} is not importable: every part of it must be a "
            "Python identifier (e.g. myapp/tasks.py or myapp.tasks)"
        )
    return ".".join(parts), base


def import_tasks_module(path: str) -> ModuleType:
    """Import one tasks module, turning whatever goes wrong into one clear error."""
    name, base = module_name_for(path)
    for directory in (str(base) if base else None, os.getcwd()):
        if directory and directory not in sys.path:
            sys.path.insert(0, directory)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigurationError(
                f"cannot import tasks module {path!r}: no module named {exc.name!r} "
                f"(looked in the working directory {os.getcwd()} and sys.path)"
            ) from None
        raise ConfigurationError(_import_failure(path, exc)) from None
    except FluxQueueError:
        raise  # e.g. FluxQueue("nosuch://") at import time: its message says it all
    except (Exception, SystemExit) as exc:
        raise ConfigurationError(_import_failure(path, exc)) from None


def _import_failure(path: str, exc: BaseException) -> str:
    where = ""
    if not isinstance(exc, SyntaxError):  # a SyntaxError names its file and line itself
        frames = traceback.extract_tb(exc.__traceback__)
        user = [f for f in frames if "importlib" not in f.filename]
        if user:
            where = f" ({user[-1].filename}, line {user[-1].lineno})"
    detail = str(exc) or repr(exc)
    return f"cannot import tasks module {path!r}: {type(exc).__name__}: {detail}{where}"


def tasks_in(module: ModuleType) -> list[tuple[str, Task[Any, Any]]]:
    """The tasks a module exposes: in ``__all__`` if it has one, else all its attributes."""
    exported = getattr(module, "__all__", None)
    if exported is not None:
        names = [str(n) for n in exported]
        missing = [n for n in names if not hasattr(module, n)]
        if missing:
            raise ConfigurationError(
                f"module {module.__name__!r} lists {', '.join(map(repr, missing))} in "
                "__all__ but has no such attribute"
            )
    else:
        names = [n for n in vars(module) if not n.startswith("__")]
    found = []
    for attr in names:
        obj = getattr(module, attr)
        if isinstance(obj, Task) and hasattr(obj, "task_name"):
            found.append((f"{module.__name__}.{attr}", obj))
    return found


def discover(paths: list[str], queues: list[str] | None = None) -> Discovery:
    """Import ``paths`` and collect the tasks of ``queues`` (None: of every queue);
    explain any problem."""
    if not paths:
        raise ConfigurationError(
            "no tasks module: pass --tasks-module-path (e.g. -t myapp.tasks) or set "
            "FLUXQUEUE_TASKS_MODULE_PATH"
        )
    found = _tasks_by_name(paths)
    app = _the_one_app(found)
    tasks = [task for _, task in found.values()]
    return Discovery(app, list(paths), _tasks_by_queue(tasks, queues, paths))


Found = dict[str, tuple[str, Task[Any, Any]]]
"""Each task name, with where the task was found (``module.attribute``) and the task."""


def _tasks_by_name(paths: list[str]) -> Found:
    """The tasks of every module in ``paths``; refuse a name defined twice, or none at all."""
    found: Found = {}
    for path in paths:
        for where, task in tasks_in(import_tasks_module(path)):
            first = found.setdefault(task.task_name, (where, task))
            if first[1] is not task:
                raise DuplicateTaskError(
                    f"task name {task.task_name!r} is defined twice: {first[0]} and {where}; "
                    "give one of them another name="
                )
    if not found:
        raise ConfigurationError(
            f"no tasks found in {', '.join(paths)}: decorate functions with @fq.task() and, "
            "if the module defines __all__, list them there"
        )
    return found


def _the_one_app(found: Found) -> FluxQueue:
    """The FluxQueue every task belongs to; a worker serves one."""
    from fluxqueue.app import FluxQueue

    apps: dict[int, list[str]] = {}
    for where, task in found.values():
        apps.setdefault(id(task.app), []).append(where)
    if len(apps) > 1:
        groups = "; ".join(", ".join(names) for names in apps.values())
        raise ConfigurationError(
            f"the tasks belong to {len(apps)} different FluxQueue instances ({groups}); "
            "a worker serves one: define FluxQueue() once and import it everywhere"
        )
    where, task = next(iter(found.values()))
    if not isinstance(task.app, FluxQueue):
        raise ConfigurationError(f"task {where} belongs to {task.app!r}, which is no FluxQueue")
    return task.app


def _tasks_by_queue(
    tasks: list[Task[Any, Any]], queues: list[str] | None, paths: list[str]
) -> dict[str, list[Task[Any, Any]]]:
    """The tasks of each queue (None: of every queue the tasks use); refuse queues that
    have none at all, warn about each one without a task."""
    if queues is None:
        queues = sorted({t.queue for t in tasks}, key=lambda q: (q != "default", q))
    by_queue = {q: sorted((t for t in tasks if t.queue == q), key=_name) for q in queues}
    if not any(by_queue.values()):
        available = sorted({t.queue for t in tasks})
        raise ConfigurationError(
            f"no tasks for queue(s) {', '.join(queues)} in {', '.join(paths)} "
            f"(their tasks use: {', '.join(available)}); pick one with --queue"
        )
    for queue, listed in by_queue.items():
        if not listed:
            log.warning("no task of %s is defined for queue %r", ", ".join(paths), queue)
    return by_queue


def _name(task: Task[Any, Any]) -> str:
    return task.task_name
