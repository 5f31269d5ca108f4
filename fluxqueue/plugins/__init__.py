"""Plugins: pluggy hooks, entry-point loading, and the broker and serializer registries."""

from fluxqueue.plugins.hookspecs import Register, hookimpl, hookspec
from fluxqueue.plugins.manager import PluginInfo, PluginManager, get_plugin_manager

__all__ = [
    "PluginInfo",
    "PluginManager",
    "Register",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
]
