"""Create or update the Atlas Vector Search indexes from the definitions in audiofind/migrations/atlas/.

Safe to run any number of times: an index that matches its definition is left alone.
"""

import copy
import json
from time import monotonic, sleep
from pathlib import Path

from audiofind.index.base import IndexUnavailable
from audiofind.services import Services

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations" / "atlas"  # package data: in the wheel too
COLLECTIONS = ("tracks", "segments", "meta")


def load_definitions(identity: dict, folder: Path = MIGRATIONS_DIR) -> list:
    """The index definitions with the embedder's dimensions filled in, sorted by file name."""
    values = {"$dim": int(identity["dim"]), "$window_dim": int(identity["window_dim"])}

    def fill(node):
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        return values.get(node, node) if isinstance(node, str) else node

    files = sorted(folder.glob("*.json"))
    if not files:
        raise IndexUnavailable(f"no Atlas index definitions in {folder}")
    return [fill(json.loads(path.read_text())) for path in files]


def _same_definition(current: dict, wanted: dict) -> bool:
    """Atlas echoes the definition back; compare the fields as sets (order is not meaningful)."""

    def key(field):
        return json.dumps(field, sort_keys=True)

    current_fields = sorted(map(key, (current or {}).get("fields", [])))
    wanted_fields = sorted(map(key, wanted.get("fields", [])))
    return current_fields == wanted_fields


def _search_index(collection, name):
    for info in collection.list_search_indexes(name):
        if info.get("name") == name:
            return info
    return None


def ensure_indexes(db, identity: dict, *, wait=True, timeout=600.0, poll=2.0) -> list:
    """Create or update every index for ``identity``; with ``wait``, return once all are queryable.

    Returns one dict per index: name, collection, action ("created", "updated", "unchanged"), status."""
    from pymongo import ASCENDING, DESCENDING
    from pymongo.operations import SearchIndexModel

    existing = set(db.list_collection_names())
    for name in COLLECTIONS:
        if name not in existing:  # a search index needs its collection to exist
            db.create_collection(name)
    # Unique: two concurrent ingests of the same audio add one track (the other gets DuplicateKeyError).
    if not db["tracks"].index_information().get("content_hash_1", {}).get("unique"):
        if "content_hash_1" in db["tracks"].index_information():
            db["tracks"].drop_index("content_hash_1")
        db["tracks"].create_index([("content_hash", ASCENDING)], unique=True)
    db["tracks"].create_index([("file", ASCENDING)])
    db["tracks"].create_index([("created_at", DESCENDING), ("_id", DESCENDING)])
    db["segments"].create_index([("track_id", ASCENDING), ("i", ASCENDING)])

    report = []
    for spec in load_definitions(identity):
        collection = db[spec["collection"]]
        name, definition = spec["name"], copy.deepcopy(spec["definition"])
        info = _search_index(collection, name)
        if info is None:
            collection.create_search_index(SearchIndexModel(definition=definition, name=name, type=spec["type"]))
            action = "created"
        elif not _same_definition(info.get("latestDefinition"), definition):
            collection.update_search_index(name, definition)
            action = "updated"
        else:
            action = "unchanged"
        report.append({"name": name, "collection": spec["collection"], "action": action, "status": ""})

    deadline = monotonic() + timeout
    for item in report:
        collection = db[item["collection"]]
        while True:
            info = _search_index(collection, item["name"]) or {}
            item["status"] = info.get("status", "DOES_NOT_EXIST")
            # After an update Atlas keeps answering from the old definition (queryable, status PENDING or
            # BUILDING) until the new one is built; READY means the definition we asked for is live.
            if not wait or (info.get("queryable") and item["status"] == "READY"):
                break
            if item["status"] == "FAILED":
                raise IndexUnavailable(f"Atlas index {item['name']!r} failed to build: {info.get('message', '')}")
            if monotonic() > deadline:
                raise IndexUnavailable(
                    f"Atlas index {item['name']!r} is not ready after {timeout:.0f} s (status {item['status']}); "
                    "run `audiofind migrate` again later"
                )
            sleep(poll)
    return report


def connect(config):
    """(client, database) for config MONGODB_URI / MONGODB_DATABASE; IndexUnavailable when unset."""
    uri = config.get("MONGODB_URI") or ""
    if not uri:
        raise IndexUnavailable("MONGODB_URI is not set: set AUDIOFIND_MONGODB_URI to the Atlas connection string")
    from pymongo import MongoClient

    client = MongoClient(
        uri,
        appname="audiofind",
        serverSelectionTimeoutMS=int(config.get("ATLAS_TIMEOUT_MS") or 10000),
    )
    return client, client[config.get("MONGODB_DATABASE") or "audiofind"]


def configured_identity(config) -> dict:
    """The identity of the configured embedder (dimensions only; the model is not loaded)."""
    return Services(config).embedder.identity


def migrate(config, wait=True, timeout=None) -> list:
    """Create/update the Atlas indexes of the catalog in config MONGODB_URI / MONGODB_DATABASE.

    Dimensions come from the catalog's recorded embedder, or, for a new catalog, from the configured
    one (AUDIOFIND_EMBEDDER). Returns ensure_indexes' report."""
    from pymongo.errors import PyMongoError

    from audiofind.index.atlas import describe_error

    client, db = connect(config)
    try:
        try:
            stored = db["meta"].find_one({"_id": "embedder"})
            identity = {k: v for k, v in stored.items() if k != "_id"} if stored else configured_identity(config)
            if timeout is None:
                timeout = float(config.get("ATLAS_INDEX_TIMEOUT") or 600)
            return ensure_indexes(db, identity, wait=wait, timeout=timeout)
        except PyMongoError as exc:
            raise describe_error(exc, config) from None
    finally:
        client.close()
