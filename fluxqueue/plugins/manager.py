"""Loading plugins from entry points and building the broker and serializer registries.

Every plugin is loaded on its own: one that fails to import (or whose registration hook
raises) is recorded with the reason and logged, and the others keep working. With
``FLUXQUEUE_STRICT_PLUGINS=1`` such a failure raises :class:`PluginLoadError` instead.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal, TypeVar

import pluggy

from fluxqueue.errors import PluginConflictError, PluginLoadError, UnknownComponentError
from fluxqueue.plugins import hookspecs

log = logging.getLogger("fluxqueue.plugins")

GROUP = "fluxqueue"
BUILTIN_MODULE = "fluxqueue.plugins.builtin"

Kind = Literal["broker", "serializer"]
T = TypeVar("T")


@dataclass
class PluginInfo:
    """What ``fluxqueue plugins`` shows for one plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    status: Literal["loaded", "failed"] = "loaded"
    error: str | None = None
    brokers: list[str] = field(default_factory=list)
    serializers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Component:
    name: str
    target: Any
    plugin: str


def _strict() -> bool:
    return os.environ.get("FLUXQUEUE_STRICT_PLUGINS", "").lower() in {"1", "true", "yes", "on"}


class PluginManager:
    """Process-wide registry of plugins; use :func:`get_plugin_manager`."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self._lock = threading.RLock()
        self._loaded = False
        self._components: dict[Kind, dict[str, _Component]] | None = None
        self._conflicts: dict[tuple[Kind, str], list[str]] = {}
        self._dists: dict[str, Any] = {}  # entry-point plugin name -> its Distribution
        #: hook name -> (plugin name, a caller of that plugin's implementation only)
        self._callers: dict[str, list[tuple[str, Any]]] = {}

    @property
    def hook(self) -> Any:
        return self.pm.hook

    # -- loading ---------------------------------------------------------------------

    def load(self) -> None:
        """Load every entry point of the ``fluxqueue`` group, once."""
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            seen: set[str] = set()
            for ep in entry_points(group=GROUP):
                if ep.value in seen:
                    continue
                seen.add(ep.value)
                info = PluginInfo(name=ep.name, module=ep.value)
                # Read by infos() only: a distribution's name and version come from its
                # METADATA file, whose parsing loads the email parser (and keeps it
                # loaded) in every worker process, which never shows them.
                self._dists[info.name] = getattr(ep, "dist", None)
                try:
                    plugin = ep.load()
                except Exception as exc:
                    self._failed(info, f"cannot import {ep.value}: {type(exc).__name__}: {exc}")
                    continue
                self._add(plugin, info)
            if BUILTIN_MODULE not in seen:
                # Running from a source tree that was never installed: no entry points.
                log.debug("fluxqueue is not installed; registering the built-ins directly")
                from fluxqueue.plugins import builtin

                self._add(builtin, PluginInfo(name="builtins", module=BUILTIN_MODULE))

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin object (module or instance) at run time; returns its name."""
        self.load()
        name = name or getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{id(plugin)}"
        with self._lock:
            self._dists.pop(name, None)
            self._add(plugin, PluginInfo(name=name, module=repr(plugin)))
        return name

    def unregister(self, name: str) -> None:
        with self._lock:
            if self.pm.get_plugin(name) is not None:
                self.pm.unregister(name=name)
            self._infos.pop(name, None)
            self._dists.pop(name, None)
            self._components = None
            self._callers = {}

    def _add(self, plugin: object, info: PluginInfo) -> None:
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:
            self._failed(info, f"cannot register: {type(exc).__name__}: {exc}")
            return
        self._infos[info.name] = info
        self._components = None
        self._callers = {}

    def _failed(self, info: PluginInfo, error: str) -> None:
        info.status, info.error = "failed", error
        self._infos[info.name] = info
        log.error("fluxqueue plugin %r failed to load: %s", info.name, error)
        if _strict():
            raise PluginLoadError(f"plugin {info.name!r} failed to load: {error}")

    # -- registries ------------------------------------------------------------------

    def _build(self) -> dict[Kind, dict[str, _Component]]:
        self.load()
        with self._lock:
            if self._components is not None:
                return self._components
            components: dict[Kind, dict[str, _Component]] = {"broker": {}, "serializer": {}}
            self._conflicts = {}
            for info in self._infos.values():
                info.brokers.clear()
                info.serializers.clear()
            hooks: list[tuple[Kind, str]] = [
                ("broker", "fluxqueue_register_brokers"),
                ("serializer", "fluxqueue_register_serializers"),
            ]
            for kind, hook_name in hooks:
                for plugin, call in self._callers_of(hook_name):
                    self._collect(kind, hook_name, plugin, call, components[kind])
            self._components = components
            return components

    def _callers_of(self, hook_name: str) -> list[tuple[str, Any]]:
        """(plugin name, caller) for each plugin implementing ``hook_name``, in pluggy's
        call order; each caller runs that one plugin's implementation, so one plugin that
        raises never keeps the others from running. Built with pluggy's public API and
        cached until a plugin is added or removed."""
        callers = self._callers.get(hook_name)
        if callers is not None:
            return callers
        with self._lock:
            callers = self._callers.get(hook_name)
            if callers is None:
                plugins = {
                    name: plugin
                    for name, plugin in self.pm.list_name_plugin()
                    if plugin is not None
                }
                implementing = {
                    name
                    for name, plugin in plugins.items()
                    if any(c.name == hook_name for c in self.pm.get_hookcallers(plugin) or ())
                }
                # pluggy calls the last registered first; keep that order.
                callers = [
                    (
                        name,
                        self.pm.subset_hook_caller(
                            hook_name, [p for n, p in plugins.items() if n != name]
                        ),
                    )
                    for name in reversed(list(plugins))
                    if name in implementing
                ]
                self._callers[hook_name] = callers
            return callers

    def has_observers(self, hook_name: str) -> bool:
        """Whether any plugin implements the hook (so a caller can skip building its
        arguments)."""
        return bool(self._callers_of(hook_name))

    def _collect(
        self, kind: Kind, hook_name: str, plugin: str, call: Any, found: dict[str, _Component]
    ) -> None:
        info = self._infos.get(plugin)
        mine: list[_Component] = []

        def register(name: str, target: Any) -> None:
            if not isinstance(name, str) or not name:
                raise TypeError(f"register() needs a non-empty name, got {name!r}")
            mine.append(_Component(name.lower(), target, plugin))

        try:
            call(register=register)
        except Exception as exc:
            if info is not None:
                self._failed(info, f"{hook_name} raised {type(exc).__name__}: {exc}")
            return
        for component in mine:
            other = found.get(component.name)
            if other is not None and other.plugin != plugin:
                owners = self._conflicts.setdefault((kind, component.name), [other.plugin])
                owners.append(plugin)
                log.error(
                    "%s %r is registered by plugins %s",
                    kind,
                    component.name,
                    " and ".join(repr(p) for p in owners),
                )
                continue
            found[component.name] = component
            if info is not None:
                (info.brokers if kind == "broker" else info.serializers).append(component.name)

    def names(self, kind: Kind) -> list[str]:
        return sorted(self._build()[kind])

    def resolve(self, kind: Kind, name: str, base: type[T]) -> type[T]:
        """The class registered as ``name``, imported now if it was registered lazily."""
        components = self._build()[kind]
        key = name.lower()
        owners = self._conflicts.get((kind, key))
        if owners:
            raise PluginConflictError(
                f"{kind} {name!r} is registered by more than one plugin: "
                f"{' and '.join(repr(p) for p in sorted(owners))}; uninstall all but one"
            )
        component = components.get(key)
        if component is None:
            what = "broker URL scheme" if kind == "broker" else "serializer"
            known = ", ".join(sorted(components)) or "none"
            hint = "; ".join(
                f"plugin {i.name!r} failed to load ({i.error})"
                for i in self._infos.values()
                if i.status == "failed"
            )
            raise UnknownComponentError(
                f"unknown {what} {name!r}; known: {known}"
                + (f". Note: {hint}" if hint else "")
                + ". `fluxqueue plugins` lists what is installed."
            )
        target = component.target
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            try:
                target = getattr(importlib.import_module(module_name), attr)
            except Exception as exc:
                raise PluginLoadError(
                    f"plugin {component.plugin!r} registered {kind} {name!r} as {target!r}, "
                    f"which cannot be loaded: {type(exc).__name__}: {exc}"
                ) from exc
        if not (isinstance(target, type) and issubclass(target, base)):
            raise PluginLoadError(
                f"plugin {component.plugin!r} registered {kind} {name!r} as {target!r}, "
                f"which is not a subclass of {base.__module__}.{base.__qualname__}"
            )
        component.target = target
        return target

    def infos(self) -> list[PluginInfo]:
        self._build()
        with self._lock:
            for name, dist in list(self._dists.items()):
                info = self._infos.get(name)
                if info is not None and dist is not None:
                    info.distribution = dist.metadata["Name"]
                    info.version = dist.version
                del self._dists[name]
            return list(self._infos.values())

    # -- observers -------------------------------------------------------------------

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook; a plugin that raises is logged, never propagated."""
        for plugin, call in self._callers_of(hook_name):
            try:
                call(**kwargs)
            except Exception:
                log.exception("plugin %r failed in %s", plugin, hook_name)


_manager: PluginManager | None = None
_manager_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, created (and entry points loaded) on first use."""
    global _manager
    if _manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = PluginManager()
    _manager.load()
    return _manager
