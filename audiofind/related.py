"""The "related songs" plugin: enrich results with documents of a MongoDB collection joined by a key.

The reference article keeps a separate collection of related songs keyed by title. Configure:
  RELATED_COLLECTION  collection name in MONGODB_DATABASE (empty: the plugin does nothing)
  RELATED_KEY         the field compared, on both sides: a track field (title, file, album…) and
                      the collection's field of the same name (default "title")
Each track gets ``related``: the matching documents (without ``_id`` and the key), at most
RELATED_LIMIT of them. Enrichment never breaks a search: if MongoDB cannot answer, tracks get none.
"""

import functools
import logging

from audiofind.hookspecs import hookimpl

log = logging.getLogger(__name__)


def related_for(tracks, collection, key, limit=20) -> dict:
    """{track_id: {"related": [docs]}} for tracks whose ``key`` value has documents in ``collection``."""
    values = {}
    for track in tracks:
        value = track.get(key)
        if value not in (None, "", []):
            values.setdefault(value, []).append(track["track_id"])
    if not values:
        return {}
    found = {}
    for doc in collection.find({key: {"$in": list(values)}}, {"_id": 0}):
        value = doc.pop(key, None)
        if value in values:
            found.setdefault(value, [])
            if len(found[value]) < limit:
                found[value].append(doc)
    return {track_id: {"related": docs} for value, docs in found.items() for track_id in values[value]}


@functools.lru_cache(maxsize=4)
def _client(uri, timeout_ms):
    """One client per process and URI (pymongo clients pool connections and are meant to be shared)."""
    from pymongo import MongoClient

    return MongoClient(uri, appname="audiofind-related", serverSelectionTimeoutMS=timeout_ms)


@hookimpl
def extra_track_fields(config):
    return ["related"] if config.get("RELATED_COLLECTION") else []


@hookimpl
def track_details(tracks, config):
    name = config.get("RELATED_COLLECTION") or ""
    uri = config.get("MONGODB_URI") or ""
    if not name or not uri or not tracks:
        return None
    from pymongo.errors import PyMongoError

    client = _client(uri, int(config.get("ATLAS_TIMEOUT_MS") or 10000))
    collection = client[config.get("MONGODB_DATABASE") or "audiofind"][name]
    key, limit = config.get("RELATED_KEY") or "title", int(config.get("RELATED_LIMIT") or 20)
    try:
        return related_for(tracks, collection, key, limit)
    except PyMongoError as exc:
        log.warning("related songs from %r unavailable: %s", name, exc)
        return None
