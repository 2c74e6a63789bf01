"""Hook specifications: what a plugin may provide. Call hooks with keyword arguments only."""

import pluggy

hookspec = pluggy.HookspecMarker("audiofind")
hookimpl = pluggy.HookimplMarker("audiofind")


@hookspec
def register_embedders():
    """Return a list of embedder classes (see embedders/base.py); each has a unique ``name``."""


@hookspec
def register_indexes():
    """Return a list of index backend classes (see index/base.py); each has a unique ``name``."""


@hookspec
def register_storages():
    """Return a list of storage backend classes (see storage/base.py); each has a unique ``name``."""


@hookspec
def extra_track_fields(config):
    """Return a list of extra field names this plugin adds to track details (shown in the UI and API)."""


@hookspec
def track_details(tracks, config):
    """Enrich results. ``tracks`` is a list of dicts (one per track, with ``track_id``, ``file``, ``title``…).

    Return a dict ``{track_id: {field: value}}`` of fields to merge into each track, or None."""


@hookspec
def after_ingest(track, catalog):
    """Called after ``track`` (an index.base.Track) was added to ``catalog``. Return value ignored."""
