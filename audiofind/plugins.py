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
    "audiofind.map_store",  # places new tracks on the catalog map
    "audiofind.shortlists",
)


BACKEND_KINDS = {"register_embedders": "embedder", "register_indexes": "index", "register_storages": "storage"}


class PluginConflict(LookupError):
    """Two plugins register a backend under the same name; the message names both."""


def make_plugin_manager(extra_plugins=(), entry_points=True) -> pluggy.PluginManager:
    """The built-ins, then ``extra_plugins``, then (with ``entry_points``) the `audiofind` entry-point group."""
    pm = pluggy.PluginManager("audiofind")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name)
    for plugin in extra_plugins:
        pm.register(plugin, _readable_name(pm, plugin))
    if entry_points:
        pm.load_setuptools_entrypoints("audiofind")
    return pm


def _readable_name(pm, plugin) -> str:
    """A module's name, or an object's class path: what an error about the plugin calls it."""
    name = getattr(plugin, "__name__", None) or f"{type(plugin).__module__}.{type(plugin).__qualname__}"
    taken, serial = name, 1
    while pm.has_plugin(taken):
        serial += 1
        taken = f"{name}#{serial}"
    return taken


def registry(pm: pluggy.PluginManager, hook: str) -> dict:
    """{name: class} from one of the register_* hooks."""
    classes, owners = {}, {}
    caller = getattr(pm.hook, hook)
    for impl in caller.get_hookimpls():
        for cls in impl.function() or ():
            if cls.name in classes and classes[cls.name] is not cls:
                raise PluginConflict(
                    f"two plugins register the {BACKEND_KINDS[hook]} {cls.name!r}: "
                    f"{owners[cls.name]} and {impl.plugin_name}"
                )
            classes[cls.name], owners[cls.name] = cls, impl.plugin_name
    return classes


def backend_class(pm, hook: str, name: str, setting: str):
    classes = registry(pm, hook)
    if name not in classes:
        known = ", ".join(sorted(classes)) or "none"
        raise LookupError(f"unknown {setting} {name!r} (AUDIOFIND_{setting}); available: {known}")
    return classes[name]
