"""Atlas backend without a network: index definitions, pipelines, documents and errors.

A small in-process fake stands in for pymongo's Database/Collection: it keeps documents, answers
the find/update/delete calls the backend makes, keeps search indexes with a build status, and runs
$vectorSearch by brute force with Atlas' dotProduct score ((1 + dot) / 2) and pre-filter rules (only
fields declared "filter" in the index). The real-server contract suite is tests/test_index.py.
"""

import copy
import json
import random
import re
import socket

import numpy as np
import pytest
from pymongo.errors import DuplicateKeyError, OperationFailure, ServerSelectionTimeoutError

from audiofind.index.atlas import (
    FILTER_PATHS,
    AtlasIndex,
    dot_from_score,
    from_bson_vector,
    to_bson_vector,
    vector_filter,
)
from audiofind.index.base import DuplicateAudio, EmbedderMismatch, Filters, IndexUnavailable, Track
from audiofind.migrate import MIGRATIONS_DIR, ensure_indexes, load_definitions, migrate

IDENTITY = {"name": "test", "version": "1", "dim": 8, "window_dim": 4}


# -- the fake ----------------------------------------------------------------------------------------------


def _eq(value, target):
    return target in value if isinstance(value, list) else value == target


def _cmp(value, op, target):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False  # MongoDB compares numbers with numbers only: null never matches a range
    return {"$gte": value >= target, "$lte": value <= target, "$gt": value > target, "$lt": value < target}[op]


def matches(doc, query):
    for field, condition in (query or {}).items():
        if field == "$and":
            if not all(matches(doc, q) for q in condition):
                return False
            continue
        if field == "$or":
            if not any(matches(doc, q) for q in condition):
                return False
            continue
        value = doc.get(field)
        if not isinstance(condition, dict):
            condition = {"$eq": condition}
        for op, target in condition.items():
            if op == "$eq":
                ok = _eq(value, target)
            elif op == "$ne":
                ok = not _eq(value, target)
            elif op == "$in":
                ok = any(_eq(value, t) for t in target)
            elif op == "$nin":
                ok = not any(_eq(value, t) for t in target)
            elif op in ("$gte", "$lte", "$gt", "$lt"):
                ok = _cmp(value, op, target)
            elif op == "$regex":
                flags = re.I if "i" in condition.get("$options", "") else 0
                ok = isinstance(value, str) and re.search(target, value, flags) is not None
            elif op == "$options":
                ok = True
            else:
                raise AssertionError(f"fake does not know {op}")
            if not ok:
                return False
    return True


def filter_paths(query):
    """Every field a filter names (to check they are declared filter fields of the index)."""
    paths = set()
    for field, condition in (query or {}).items():
        if field in ("$and", "$or"):
            for q in condition:
                paths |= filter_paths(q)
        else:
            paths.add(field)
    return paths


def project(doc, projection):
    if not projection:
        return copy.deepcopy(doc)
    include = {k for k, v in projection.items() if v and k != "_id"}
    if include:
        out = {k: copy.deepcopy(doc[k]) for k in include if k in doc}
        if projection.get("_id", 1):
            out["_id"] = doc["_id"]
        return out
    return {k: copy.deepcopy(v) for k, v in doc.items() if projection.get(k, 1)}


class Result:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class Cursor:
    def __init__(self, docs):
        self.docs = docs

    def sort(self, key, direction=None):
        keys = [(key, direction)] if isinstance(key, str) else key
        for field, order in reversed(keys):
            self.docs.sort(key=lambda d: (d.get(field) is not None, d.get(field)), reverse=order == -1)
        return self

    def skip(self, n):
        self.docs = self.docs[n:]
        return self

    def limit(self, n):
        self.docs = self.docs[:n] if n else self.docs
        return self

    def __iter__(self):
        return iter(self.docs)


class FakeCollection:
    def __init__(self, db, name):
        self.db, self.name = db, name
        self.docs = {}
        self.search_indexes = {}
        self.pipelines = []
        self.fail_insert_one = None

    def _check(self):
        if self.db.fail:
            raise self.db.fail

    def find_one(self, query=None, projection=None):
        return next(iter(self.find(query, projection)), None)

    def find(self, query=None, projection=None):
        self._check()
        return Cursor([project(d, projection) for d in self.docs.values() if matches(d, query)])

    def count_documents(self, query):
        self._check()
        return sum(matches(d, query) for d in self.docs.values())

    def insert_one(self, doc):
        self._check()
        if self.fail_insert_one:
            raise self.fail_insert_one
        if doc["_id"] in self.docs:
            raise DuplicateKeyError(f"duplicate _id {doc['_id']}")
        for name, info in self.index_information().items():
            field = info["key"][0][0]
            if info.get("unique") and any(other.get(field) == doc.get(field) for other in self.docs.values()):
                raise DuplicateKeyError(f"E11000 duplicate key error collection: {self.name} index: {name}")
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    def insert_many(self, docs, ordered=True):
        for doc in docs:
            self.insert_one(doc)

    def replace_one(self, query, doc, upsert=False):
        self._check()
        for key, old in list(self.docs.items()):
            if matches(old, query):
                self.docs[key] = copy.deepcopy(doc)
                return Result(matched_count=1)
        if upsert:
            self.docs[doc["_id"]] = copy.deepcopy(doc)
        return Result(matched_count=0)

    def _update(self, query, change, many):
        self._check()
        n = 0
        for doc in self.docs.values():
            if matches(doc, query):
                doc.update(copy.deepcopy(change["$set"]))
                n += 1
                if not many:
                    break
        return Result(matched_count=n)

    def update_one(self, query, change):
        return self._update(query, change, False)

    def update_many(self, query, change):
        return self._update(query, change, True)

    def _delete(self, query, many):
        self._check()
        gone = [k for k, d in self.docs.items() if matches(d, query)]
        gone = gone if many else gone[:1]
        for key in gone:
            del self.docs[key]
        return Result(deleted_count=len(gone))

    def delete_one(self, query):
        return self._delete(query, False)

    def delete_many(self, query):
        return self._delete(query, True)

    def create_index(self, keys, unique=False, **kwargs):
        self._check()
        self.db.regular_indexes.append((self.name, keys, unique))

    def index_information(self):
        return {"_".join(f"{field}_{order}" for field, order in keys): {"key": keys, "unique": unique}
                for name, keys, unique in self.db.regular_indexes if name == self.name}

    def drop_index(self, index_name):
        self.db.regular_indexes = [entry for entry in self.db.regular_indexes
                                   if not (entry[0] == self.name and
                                           "_".join(f"{f}_{o}" for f, o in entry[1]) == index_name)]

    # -- Atlas search indexes: each listing advances a build by one step
    def list_search_indexes(self, name=None):
        self._check()
        if self.db.no_atlas:
            raise OperationFailure("$listSearchIndexes stage is only allowed on MongoDB Atlas", code=6047401)
        found = []
        for info in self.search_indexes.values():
            if name is None or info["name"] == name:
                if info["status"] in ("PENDING", "BUILDING"):
                    info["steps"] -= 1
                    info["status"] = "BUILDING"
                    if info["steps"] <= 0:
                        info.update(status="READY", queryable=True)
                found.append(copy.deepcopy({k: v for k, v in info.items() if k != "steps"}))
        return found

    def create_search_index(self, model):
        doc = model.document
        self.db.calls.append(("create", self.name, doc["name"]))
        self.search_indexes[doc["name"]] = {
            "name": doc["name"], "type": doc["type"], "latestDefinition": copy.deepcopy(doc["definition"]),
            "status": "PENDING", "queryable": False, "steps": self.db.build_steps,
        }

    def update_search_index(self, name, definition):
        self.db.calls.append(("update", self.name, name))
        info = self.search_indexes[name]
        info.update(latestDefinition=copy.deepcopy(definition), status="PENDING", steps=self.db.build_steps)

    def aggregate(self, pipeline):
        self._check()
        self.pipelines.append(copy.deepcopy(pipeline))
        if "$sample" in pipeline[0]:
            docs = list(self.docs.values())
            chosen = random.Random(0).sample(docs, min(pipeline[0]["$sample"]["size"], len(docs)))
            return iter(project(doc, pipeline[1]["$project"]) for doc in chosen)
        stage = pipeline[0]["$vectorSearch"]
        info = self.search_indexes.get(stage["index"])
        if info is None or not info["queryable"]:
            return iter([])  # Atlas answers an unknown index with nothing
        fields = info["latestDefinition"]["fields"]
        vector_field = next(f for f in fields if f["type"] == "vector")
        declared = {f["path"] for f in fields if f["type"] == "filter"}
        undeclared = filter_paths(stage.get("filter")) - declared
        if undeclared:
            raise OperationFailure(f"Path '{undeclared.pop()}' needs to be indexed as filter", code=8)
        assert stage["path"] == vector_field["path"]
        assert stage["limit"] <= stage["numCandidates"] <= 10000
        query = np.asarray(stage["queryVector"], dtype=np.float32)
        assert len(query) == vector_field["numDimensions"]
        scored = []
        for doc in self.docs.values():
            if matches(doc, stage.get("filter")):
                dot = float(from_bson_vector(doc[stage["path"]]) @ query)
                scored.append(((1.0 + dot) / 2.0, doc))
        scored.sort(key=lambda pair: -pair[0])
        keep = pipeline[1]["$project"]
        out = []
        for score, doc in scored[: stage["limit"]]:
            row = {k: doc[k] for k, v in keep.items() if v == 1 and k in doc}
            row["_id"] = doc["_id"]
            row["score"] = score
            out.append(row)
        return iter(out)


class FakeDatabase:
    def __init__(self, build_steps=2):
        self.collections = {}
        self.regular_indexes = []
        self.calls = []
        self.build_steps = build_steps
        self.fail = None
        self.no_atlas = False

    def __getitem__(self, name):
        return self.collections.setdefault(name, FakeCollection(self, name))

    def command(self, name):
        if self.fail:
            raise self.fail
        assert name == "ping"
        return {"ok": 1}

    def list_collection_names(self):
        return list(self.collections)

    def create_collection(self, name):
        self[name]
        self.calls.append(("create_collection", name))


# -- fixtures -------------------------------------------------------------------------------------------


def unit(rng, n, dim):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_track(i, **fields):
    base = dict(track_id=f"t{i:03d}", file=f"song{i}.mp3", content_hash=f"h{i}", duration=60.0 + i,
                embedder="test:1", created_at=1000.0 + i, title=f"Song {i}")
    base.update(fields)
    return Track(**base)


@pytest.fixture
def db():
    return FakeDatabase()


@pytest.fixture
def index(db):
    index = AtlasIndex({"MONGODB_URI": "mongodb://fake", "ATLAS_INDEX_TIMEOUT": 5}, database=db)
    index.set_embedder_identity(IDENTITY)
    return index


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    """ensure_indexes polls with time.sleep; the fake's builds advance per listing, so no waiting is needed."""
    import audiofind.index.atlas.definitions

    monkeypatch.setattr(audiofind.index.atlas.definitions, "sleep", lambda seconds: None)


def empty_index(kind, tmp_path, monkeypatch, identity):
    """An empty index for ``identity``: the local one (exact search only) or, for "atlas", the backend over this
    module's fake database, its index builds not waited for."""
    if kind == "local":
        from audiofind.index.local import LocalIndex

        index = LocalIndex({"DATA_DIR": str(tmp_path), "ANN_THRESHOLD": 0})
    else:
        import audiofind.index.atlas.definitions

        monkeypatch.setattr(audiofind.index.atlas.definitions, "sleep", lambda seconds: None)
        index = AtlasIndex({"MONGODB_URI": "mongodb://fake", "ATLAS_INDEX_TIMEOUT": 5}, database=FakeDatabase())
    index.set_embedder_identity(identity)
    return index


def add_tracks(index, rng, n=6, windows=3, **fields_for):
    vectors = unit(rng, n, IDENTITY["dim"])
    window_vectors = [unit(rng, windows, IDENTITY["window_dim"]) for _ in range(n)]
    tracks = []
    for i in range(n):
        track = make_track(i, **{k: f(i) for k, f in fields_for.items()})
        spans = np.array([[5.0 * w, 5.0 * w + 10.0] for w in range(windows)], dtype=np.float32)
        index.add(track, vectors[i], spans, window_vectors[i])
        tracks.append(track)
    return tracks, vectors, window_vectors


# -- index definitions and migrate --------------------------------------------------------------------------


def test_index_definitions_from_migrations_files():
    specs = {spec["name"]: spec for spec in load_definitions({"dim": 4096, "window_dim": 2048})}
    # "$filters" in the files stands for one filter field per field of the filter table (index/filters.py)
    assert FILTER_PATHS[:7] == ("track_id", "file", "album", "artist", "tags", "duration", "bpm")
    filters = [{"type": "filter", "path": p} for p in FILTER_PATHS]
    assert specs["tracks_vector"] == {
        "collection": "tracks",
        "name": "tracks_vector",
        "type": "vectorSearch",
        "definition": {
            "fields": [{"type": "vector", "path": "vector", "numDimensions": 4096, "similarity": "dotProduct"}, *filters]
        },
    }
    assert specs["segments_vector"]["collection"] == "segments"
    assert specs["segments_vector"]["definition"]["fields"][0] == {
        "type": "vector", "path": "vector", "numDimensions": 2048, "similarity": "dotProduct"}
    assert specs["segments_vector"]["definition"]["fields"][1:] == filters
    # The files are plain JSON with placeholders, readable by Atlas' own tools once filled in.
    raw = json.loads((MIGRATIONS_DIR / "tracks_vector.json").read_text())
    assert raw["definition"]["fields"][0]["numDimensions"] == "$dim"


def test_migrate_creates_waits_and_is_idempotent(db):
    report = ensure_indexes(db, IDENTITY, wait=True, timeout=5)
    assert [(r["name"], r["action"], r["status"]) for r in report] == [
        ("segments_vector", "created", "READY"), ("tracks_vector", "created", "READY")]
    assert {"tracks", "segments", "meta"} <= set(db.list_collection_names())
    assert ("tracks", [("content_hash", 1)], True) in db.regular_indexes  # unique: one track per audio
    before = list(db.calls)
    again = ensure_indexes(db, IDENTITY, wait=True, timeout=5)
    assert [r["action"] for r in again] == ["unchanged", "unchanged"]
    assert [c for c in db.calls if c not in before] == []


def test_migrate_updates_an_index_built_for_other_dimensions(db):
    ensure_indexes(db, IDENTITY, wait=True, timeout=5)
    report = ensure_indexes(db, {**IDENTITY, "dim": 16}, wait=True, timeout=5)
    assert {r["name"]: r["action"] for r in report} == {"segments_vector": "unchanged", "tracks_vector": "updated"}
    fields = db["tracks"].search_indexes["tracks_vector"]["latestDefinition"]["fields"]
    assert fields[0]["numDimensions"] == 16


def test_migrate_gives_up_with_a_clear_message_when_not_ready(db):
    db.build_steps = 10**6
    with pytest.raises(IndexUnavailable, match="not ready after .* run `audiofind migrate` again"):
        ensure_indexes(db, IDENTITY, wait=True, timeout=0)
    report = ensure_indexes(db, IDENTITY, wait=False)
    assert all(r["action"] == "unchanged" and r["status"] == "BUILDING" for r in report)


def test_migrate_reports_a_failed_build(db):
    ensure_indexes(db, IDENTITY, wait=False)
    db["tracks"].search_indexes["tracks_vector"].update(status="FAILED", message="bad definition")
    with pytest.raises(IndexUnavailable, match="failed to build: bad definition"):
        ensure_indexes(db, IDENTITY, wait=True, timeout=5)


def test_migrate_needs_a_connection_string():
    with pytest.raises(IndexUnavailable, match="AUDIOFIND_MONGODB_URI"):
        migrate({"MONGODB_URI": "", "EMBEDDER": "dsp"})


def test_plain_mongodb_without_vector_search_is_named(db):
    db.no_atlas = True
    index = AtlasIndex({"MONGODB_URI": "mongodb://user:secret@db.example:27017"}, database=db)
    with pytest.raises(IndexUnavailable, match="no Atlas Vector Search") as error:
        index.set_embedder_identity(IDENTITY)
    assert "secret" not in str(error.value)


def test_unreachable_server_is_index_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    index = AtlasIndex({"MONGODB_URI": f"mongodb://user:secret@127.0.0.1:{port}/?directConnection=true",
                        "ATLAS_TIMEOUT_MS": 300})
    with pytest.raises(IndexUnavailable, match="cannot reach MongoDB at 127.0.0.1") as error:
        index.count()
    assert "secret" not in str(error.value)
    index.close()


# -- vectors and pipelines -----------------------------------------------------------------------------------


def test_vectors_are_stored_as_bson_float32_vectors():
    from bson.binary import Binary, BinaryVectorDtype

    x = np.array([0.5, -1.25, 3.0], dtype=np.float32)
    assert to_bson_vector(x) == Binary.from_vector(x.tolist(), BinaryVectorDtype.FLOAT32)
    assert np.array_equal(from_bson_vector(to_bson_vector(x)), x)
    assert np.array_equal(from_bson_vector([0.5, -1.25, 3.0]), x)


def test_filters_translate_to_vector_search_filters():
    assert vector_filter(Filters()) is None
    # "More like this", as in the article: the query track's file is excluded with $ne.
    assert vector_filter(Filters(exclude_track_ids=["t1"], exclude_files=["a.mp3"])) == {
        "$and": [{"track_id": {"$ne": "t1"}}, {"file": {"$ne": "a.mp3"}}]}
    assert vector_filter(Filters(exclude_files=["a.mp3"])) == {"file": {"$ne": "a.mp3"}}
    assert vector_filter(Filters(
        exclude_track_ids=["t1", "t2"], album="Blue", artist="Ann", tags=["Piano", "Jazz"],
        min_duration=30, max_duration=90, min_bpm=100, max_bpm=120,
    )) == {"$and": [
        {"track_id": {"$nin": ["t1", "t2"]}},
        {"album": {"$eq": "Blue"}},
        {"artist": {"$eq": "Ann"}},
        {"tags": {"$eq": "Piano"}},
        {"tags": {"$eq": "Jazz"}},
        {"duration": {"$gte": 30.0}},
        {"duration": {"$lte": 90.0}},
        {"bpm": {"$gte": 100.0}},
        {"bpm": {"$lte": 120.0}},
    ]}


def test_search_pipeline_and_scores(index, db):
    rng = np.random.default_rng(1)
    tracks, vectors, _ = add_tracks(index, rng)
    query = vectors[2] + 0.1 * unit(rng, 1, IDENTITY["dim"])[0]
    query /= np.linalg.norm(query)
    hits = index.search(query, 3, Filters(exclude_files=["song5.mp3"]))
    pipeline = db["tracks"].pipelines[-1]
    stage = pipeline[0]["$vectorSearch"]
    assert stage["index"] == "tracks_vector" and stage["path"] == "vector"
    assert stage["limit"] == 3 and stage["numCandidates"] == 100  # max(3 * 20, 100)
    assert stage["filter"] == {"file": {"$ne": "song5.mp3"}}
    assert np.allclose(stage["queryVector"], query)
    assert pipeline[1] == {"$project": {"_id": 1, "score": {"$meta": "vectorSearchScore"}}}
    # Scores are dot products, like the local backend's, not Atlas' (1 + dot) / 2.
    expected = sorted(((float(vectors[i] @ query), t.track_id) for i, t in enumerate(tracks) if i != 5), reverse=True)
    assert [h.track_id for h in hits] == [t for _, t in expected[:3]]
    assert np.allclose([h.score for h in hits], [s for s, _ in expected[:3]], atol=1e-5)
    assert hits[0].track_id == "t002" and hits[0].match_start is None
    assert dot_from_score(1.0) == 1.0 and dot_from_score(0.5) == 0.0


def test_num_candidates_follow_the_limit_and_the_setting(index):
    assert index.num_candidates(10) == 200
    assert index.num_candidates(1) == 100
    assert index.num_candidates(5000) == 10000  # Atlas' maximum
    index.config["ATLAS_NUM_CANDIDATES_FACTOR"] = 50
    assert index.num_candidates(10) == 500


def test_filters_in_atlas_match_the_reference_semantics(index):
    rng = np.random.default_rng(7)
    albums, artists, tags = ["A", "B", ""], ["X", "Y"], ["piano", "drums", "choir"]
    tracks, vectors, _ = add_tracks(
        index, rng, n=30,
        album=lambda i: albums[i % 3], artist=lambda i: artists[i % 2],
        tags=lambda i: [t for j, t in enumerate(tags) if (i >> j) & 1],
        bpm=lambda i: None if i % 5 == 0 else 80.0 + 3 * i,
    )
    cases = [
        Filters(album="A"), Filters(artist="Y", album="B"), Filters(tags=["piano"]), Filters(tags=["piano", "drums"]),
        Filters(min_duration=70, max_duration=80), Filters(min_bpm=100), Filters(max_bpm=120),
        Filters(min_bpm=90, max_bpm=150, tags=["choir"]), Filters(exclude_track_ids=["t001", "t002"]),
        Filters(exclude_files=["song3.mp3"], exclude_track_ids=["t004"]),
    ]
    for filters in cases:
        expected = {t.track_id for t in tracks if filters.matches(t)}
        hits = index.search(vectors[0], 30, filters)
        assert {h.track_id for h in hits} == expected, filters
        seg_hits = index.search_segments(unit(rng, 2, IDENTITY["window_dim"]), 30, filters)
        assert {h.track_id for h in seg_hits} == expected, filters


def test_segment_search_finds_the_track_and_the_window(index, db):
    rng = np.random.default_rng(3)
    tracks, _, window_vectors = add_tracks(index, rng, n=8, windows=6)
    # A query of two windows close to windows 3 and 4 of track 5.
    query = window_vectors[5][3:5] + 0.05 * unit(rng, 2, IDENTITY["window_dim"])
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    hits = index.search_segments(query, 3, Filters())
    assert hits[0].track_id == "t005"
    sims = query @ window_vectors[5].T
    assert hits[0].score == pytest.approx(float(sims.max(axis=1).mean()), abs=1e-5)
    best = int(np.unravel_index(np.argmax(sims), sims.shape)[1])
    assert (hits[0].match_start, hits[0].match_end) == (5.0 * best, 5.0 * best + 10.0)
    stages = [p[0]["$vectorSearch"] for p in db["segments"].pipelines]
    assert len(stages) == 2 and all(s["index"] == "segments_vector" and s["limit"] == 50 for s in stages)
    assert db["segments"].pipelines[-1][1] == {"$project": {"track_id": 1, "score": {"$meta": "vectorSearchScore"}}}
    # "More like this" on segments excludes the track itself.
    hits = index.search_segments(query, 3, Filters(exclude_files=["song5.mp3"]))
    assert "t005" not in [h.track_id for h in hits]


def test_long_queries_use_a_bounded_number_of_windows_for_candidates(index, db):
    rng = np.random.default_rng(4)
    add_tracks(index, rng, n=3)
    index.config["ATLAS_SEGMENT_QUERY_WINDOWS"] = 4
    index.search_segments(unit(rng, 40, IDENTITY["window_dim"]), 2, Filters())
    assert len(db["segments"].pipelines) == 4


# -- documents --------------------------------------------------------------------------------------------


def test_documents_written_and_read_back(index, db):
    rng = np.random.default_rng(5)
    tracks, vectors, window_vectors = add_tracks(index, rng, n=4, tags=lambda i: ["piano"], bpm=lambda i: 100.0 + i)
    doc = db["tracks"].docs["t001"]
    assert doc["file"] == "song1.mp3" and doc["tags"] == ["piano"] and doc["embedder"] == "test:1"
    segment = db["segments"].docs["t001:2"]
    assert {k: segment[k] for k in ("track_id", "i", "start", "end", "file", "tags", "bpm", "duration")} == {
        "track_id": "t001", "i": 2, "start": 10.0, "end": 20.0, "file": "song1.mp3", "tags": ["piano"],
        "bpm": 101.0, "duration": 61.0}
    assert index.get("t001") == tracks[1]
    assert index.get("nope") is None
    assert set(index.get_many(["t000", "t003", "nope"])) == {"t000", "t003"}
    assert index.find_by_hash("h2") == tracks[2]
    assert index.find_by_file("song3.mp3") == [tracks[3]]
    assert index.count() == 4
    assert [t.track_id for t in index.list()] == ["t003", "t002", "t001", "t000"]  # newest first
    assert [t.track_id for t in index.list(offset=1, limit=2)] == ["t002", "t001"]
    assert [t.track_id for t in index.list(query="SONG 2")] == ["t002"]
    assert index.list(query="(") == []  # user text is not a regular expression
    assert np.allclose(index.track_vector("t002"), vectors[2])
    windows, vecs = index.segments("t002")
    assert windows.tolist() == [[0, 10], [5, 15], [10, 20]] and np.allclose(vecs, window_vectors[2])
    with pytest.raises(KeyError):
        index.track_vector("nope")
    with pytest.raises(KeyError):
        index.segments("nope")


def test_vectors_by_id_and_a_sample_come_in_one_read_each(index, db):
    tracks, vectors, _ = add_tracks(index, np.random.default_rng(6), n=5)
    reads = len(db["tracks"].pipelines)
    assert np.allclose(index.track_vectors(["t003", "t000"]), vectors[[3, 0]])
    with pytest.raises(KeyError):
        index.track_vectors(["t003", "nope"])
    sample = index.vector_sample(3)
    assert sample.shape == (3, IDENTITY["dim"]) and db["tracks"].pipelines[reads:] == [
        [{"$sample": {"size": 3}}, {"$project": {"vector": 1}}]]
    assert all(any(np.allclose(row, v) for v in vectors) for row in sample)
    assert len(index.vector_sample(50)) == 5


def test_update_reaches_the_segments_used_for_filtering(index, db):
    rng = np.random.default_rng(6)
    add_tracks(index, rng, n=2)
    index.update("t001", {"album": "Night", "tags": ["choir"], "title": "Renamed"})
    assert index.get("t001").title == "Renamed"
    assert {d["album"] for d in db["segments"].docs.values() if d["track_id"] == "t001"} == {"Night"}
    hits = index.search_segments(unit(rng, 1, IDENTITY["window_dim"]), 5, Filters(album="Night", tags=["choir"]))
    assert [h.track_id for h in hits] == ["t001"]
    with pytest.raises(KeyError):
        index.update("nope", {"title": "x"})
    with pytest.raises(ValueError, match="cannot update vector"):
        index.update("t001", {"vector": []})


def test_remove_deletes_track_and_segments(index, db):
    rng = np.random.default_rng(8)
    tracks, vectors, _ = add_tracks(index, rng, n=3)
    assert index.remove("t001") is True
    assert index.remove("t001") is False
    assert index.get("t001") is None and index.count() == 2
    assert not [d for d in db["segments"].docs.values() if d["track_id"] == "t001"]
    assert "t001" not in [h.track_id for h in index.search(vectors[1], 3, Filters())]


def test_add_is_all_or_nothing(index, db):
    rng = np.random.default_rng(9)
    add_tracks(index, rng, n=1)
    db["tracks"].fail_insert_one = ServerSelectionTimeoutError("connection lost")
    vec, win = unit(rng, 1, IDENTITY["dim"])[0], unit(rng, 2, IDENTITY["window_dim"])
    with pytest.raises(IndexUnavailable, match="cannot reach MongoDB"):
        index.add(make_track(7), vec, np.array([[0, 10], [5, 15]]), win)
    assert index.get("t007") is None and index.count() == 1
    assert not [d for d in db["segments"].docs.values() if d["track_id"] == "t007"]
    db["tracks"].fail_insert_one = None
    index.add(make_track(7), vec, np.array([[0, 10], [5, 15]]), win)
    assert index.get("t007") is not None and len(index.segments("t007")[0]) == 2
    with pytest.raises(ValueError, match="already in the index"):
        index.add(make_track(7), vec, np.array([[0, 10], [5, 15]]), win)


def test_the_same_audio_added_twice_at_once_is_one_track(index, db, monkeypatch):
    """Two ingests of one file race past find_by_hash; the unique index on content_hash lets one track in."""
    ensure_indexes(db, IDENTITY, wait=True, timeout=5)
    rng = np.random.default_rng(7)
    spans = np.array([[0.0, 10.0]], dtype=np.float32)
    index.add(make_track(1, content_hash="same"), unit(rng, 1, 8)[0], spans, unit(rng, 1, 4))
    real, looks = index.find_by_hash, []
    # The second ingest's own check comes before the first one's insert: it sees nothing the first time.
    monkeypatch.setattr(index, "find_by_hash", lambda h: None if not looks and not looks.append(h) else real(h))
    with pytest.raises(DuplicateAudio) as raised:
        index.add(make_track(2, content_hash="same"), unit(rng, 1, 8)[0], spans, unit(rng, 1, 4))
    assert raised.value.existing.track_id == "t001"
    assert index.count() == 1 and not db["segments"].find_one({"track_id": "t002"})


def test_pages_by_cursor_follow_the_sort_keys(index):
    tracks, _, _ = add_tracks(index, np.random.default_rng(8), n=5, title=lambda i: "Night" if i % 2 else "Day")
    first, cursor = index.page(2)
    second, cursor2 = index.page(2, cursor=cursor)
    third, last = index.page(2, cursor=cursor2)
    assert [t.track_id for t in first + second + third] == [t.track_id for t in reversed(tracks)] and last is None
    assert [t.title for t in index.page(5, query="night")[0]] == ["Night", "Night"]
    with pytest.raises(ValueError, match="not a cursor"):
        index.page(2, cursor="x:y")


def test_embedder_identity_is_recorded(index, db):
    assert index.embedder_identity() == IDENTITY
    assert db["meta"].docs["embedder"]["dim"] == 8


# -- errors ---------------------------------------------------------------------------------------------------


def test_wrong_dimensions_are_embedder_mismatch(index):
    rng = np.random.default_rng(10)
    with pytest.raises(EmbedderMismatch, match="16 dimensions .* has 8"):
        index.add(make_track(1), unit(rng, 1, 16)[0], np.array([[0, 10]]), unit(rng, 1, 4))
    with pytest.raises(EmbedderMismatch, match="per window"):
        index.add(make_track(1), unit(rng, 1, 8)[0], np.array([[0, 10]]), unit(rng, 1, 5))
    with pytest.raises(EmbedderMismatch, match="query vector has 16"):
        index.search(unit(rng, 1, 16)[0], 5, Filters())
    with pytest.raises(EmbedderMismatch):
        index.search_segments(unit(rng, 2, 16), 5, Filters())
    assert index.count() == 0


def test_missing_index_says_run_migrate(index, db):
    del db["tracks"].search_indexes["tracks_vector"]
    with pytest.raises(IndexUnavailable, match="'tracks_vector' .* does not exist: run `audiofind migrate`"):
        index.search(np.ones(8, dtype=np.float32) / np.sqrt(8), 5, Filters())


def test_index_not_ready_is_reported(db):
    index = AtlasIndex({"MONGODB_URI": "mongodb://fake"}, database=db)
    db["meta"].insert_one({"_id": "embedder", **IDENTITY})
    ensure_indexes(db, IDENTITY, wait=False)
    db.build_steps = 10**6
    for info in db["segments"].search_indexes.values():
        info.update(status="BUILDING", queryable=False, steps=10**6)
    with pytest.raises(IndexUnavailable, match="not ready yet \\(status BUILDING\\)"):
        index.search_segments(np.ones((1, 4), dtype=np.float32) / 2, 5, Filters())


def test_index_built_for_other_dimensions_is_embedder_mismatch(index, db):
    db["meta"].replace_one({"_id": "embedder"}, {"_id": "embedder", **IDENTITY, "dim": 16})
    index._ready.clear()
    with pytest.raises(EmbedderMismatch, match="built for 8 dimensions .* has 16: run `audiofind migrate`"):
        index.search(np.ones(16, dtype=np.float32) / 4, 5, Filters())


def test_empty_catalog_searches_return_nothing(db):
    index = AtlasIndex({"MONGODB_URI": "mongodb://fake"}, database=db)
    assert index.embedder_identity() is None
    assert index.search(np.ones(8, dtype=np.float32), 5, Filters()) == []
    assert index.search_segments(np.ones((1, 4), dtype=np.float32), 5, Filters()) == []
    with pytest.raises(IndexUnavailable, match="no embedder yet"):
        index.add(make_track(1), np.ones(8), np.array([[0, 10]]), np.ones((1, 4)))


def test_atlas_index_is_a_registered_plugin():
    from audiofind.plugins import make_plugin_manager, registry

    assert registry(make_plugin_manager(), "register_indexes")["atlas"] is AtlasIndex


# -- the related-songs plugin -----------------------------------------------------------------------------


def test_related_songs_joined_by_key(db):
    from audiofind.related import related_for, track_details

    related = db["related"]
    related.insert_many([
        {"_id": 1, "title": "Song 1", "related": "Song 9", "why": "same session"},
        {"_id": 2, "title": "Song 1", "related": "Song 4"},
        {"_id": 3, "title": "Other", "related": "Song 2"},
    ])
    tracks = [{"track_id": "t1", "title": "Song 1"}, {"track_id": "t2", "title": "Song 2"}, {"track_id": "t3"}]
    assert related_for(tracks, related, "title") == {
        "t1": {"related": [{"related": "Song 9", "why": "same session"}, {"related": "Song 4"}]}}
    assert related_for(tracks, related, "title", limit=1)["t1"]["related"] == [{"related": "Song 9", "why": "same session"}]
    assert track_details(tracks=tracks, config={"RELATED_COLLECTION": ""}) is None


def test_readiness_check(db):
    index = AtlasIndex({"MONGODB_URI": "mongodb://fake"}, database=db)
    index.check()  # a new catalog: reachable is enough
    index.set_embedder_identity(IDENTITY)
    index.check()
    db["segments"].search_indexes["segments_vector"].update(status="BUILDING", queryable=False, steps=10**6)
    with pytest.raises(IndexUnavailable, match="'segments_vector' is not ready yet"):
        index.check()
    db.fail = ServerSelectionTimeoutError("no servers")
    with pytest.raises(IndexUnavailable, match="cannot reach MongoDB"):
        index.check()


def test_related_songs_never_break_a_search_when_mongodb_is_down():
    from audiofind.plugins import make_plugin_manager

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = {"RELATED_COLLECTION": "related", "MONGODB_URI": f"mongodb://127.0.0.1:{port}/?directConnection=true",
              "ATLAS_TIMEOUT_MS": 200}
    pm = make_plugin_manager()
    assert "related" in [f for fields in pm.hook.extra_track_fields(config=config) for f in fields or ()]
    results = pm.hook.track_details(tracks=[{"track_id": "t1", "title": "Song 1"}], config=config)
    assert all(not r for r in results)
