"""Hook specifications: what a plugin may provide. Call hooks with keyword arguments only."""

import pluggy

hookspec = pluggy.HookspecMarker("audiofind")
hookimpl = pluggy.HookimplMarker("audiofind")


@hookspec
def register_embedders():
    """Return a list of embedder classes (see embedders/base.py). Each ``name`` (AUDIOFIND_EMBEDDER) must be
    unique across plugins: two plugins registering one name is an error that names both."""


@hookspec
def register_indexes():
    """Return a list of index backend classes (see index/base.py); each ``name`` (AUDIOFIND_INDEX) unique."""


@hookspec
def register_storages():
    """Return a list of storage backend classes (see storage/base.py); each ``name`` (AUDIOFIND_STORAGE) unique."""


@hookspec
def extra_track_fields(config):
    """Return a list of the field names this plugin's ``track_details`` adds: the track page shows them."""


@hookspec
def track_details(tracks, config):
    """Enrich results. ``tracks`` is a list of dicts (one per track, with ``track_id``, ``file``, ``title``…).

    Return a dict ``{track_id: {field: value}}`` of fields to merge into each track, or None."""


@hookspec
def after_ingest(track, catalog):
    """Called after ``track`` (an index.base.Track) was added to ``catalog`` (by an ingest, or again by a
    reindex with its new vectors). Return value ignored."""


@hookspec
def after_remove(track, catalog):
    """Called after ``track`` (an index.base.Track) was removed from ``catalog``. Return value ignored."""
