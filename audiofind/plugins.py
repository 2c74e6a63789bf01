"""The plugin manager: built-in backends are plugins of the same hooks as third-party ones."""

import importlib

import pluggy

from audiofind import hookspecs

DEFAULT_PLUGINS = (
    "audiofind.embedders.panns",
    "audiofind.embedders.dsp",
    "audiofind.index.local",
    "audiofind.index.atlas",
    "audiofind.storage.local",
    "audiofind.storage.s3",
    "audiofind.related",
)


def make_plugin_manager(extra_plugins=()) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("audiofind")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name)
    for plugin in extra_plugins:
        pm.register(plugin)
    pm.load_setuptools_entrypoints("audiofind")
    return pm


def registry(pm: pluggy.PluginManager, hook: str) -> dict:
    """{name: class} from one of the register_* hooks."""
    classes = {}
    for batch in getattr(pm.hook, hook)():
        for cls in batch or ():
            classes[cls.name] = cls
    return classes


def backend_class(pm, hook: str, name: str, setting: str):
    classes = registry(pm, hook)
    if name not in classes:
        known = ", ".join(sorted(classes)) or "none"
        raise LookupError(f"unknown {setting} {name!r} (AUDIOFIND_{setting}); available: {known}")
    return classes[name]
