"""The Atlas Vector Search index definitions (audiofind/migrations/atlas/*.json) and bringing a database's
indexes in line with them (``ensure_indexes``, used by ``audiofind migrate`` and a new catalog).

In the JSON files "$dim" and "$window_dim" stand for the embedder's dimensions and "$filters", an element of
"fields", for one "filter" field per filter path of the filter table (atlas/filters.py): the table is the one
place filter fields are declared.
"""

import copy
import json
from pathlib import Path
from time import monotonic, sleep

from audiofind.index.atlas.filters import index_filter_fields
from audiofind.index.base import IndexUnavailable

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations" / "atlas"  # package data: in the wheel too
COLLECTIONS = ("tracks", "segments", "meta")


def load_definitions(identity: dict, folder: Path = MIGRATIONS_DIR) -> list:
    """The index definitions with the embedder's dimensions and the filter fields filled in, by file name."""
    values = {"$dim": int(identity["dim"]), "$window_dim": int(identity["window_dim"])}

    def fill(node):
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [item for v in node for item in (index_filter_fields() if v == "$filters" else [fill(v)])]
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


def search_index(collection, name):
    """Atlas' description of the search index ``name`` on ``collection`` (status, queryable, ...), or None."""
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
        info = search_index(collection, name)
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
            info = search_index(collection, item["name"]) or {}
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
