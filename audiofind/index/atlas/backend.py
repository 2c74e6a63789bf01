"""MongoDB Atlas Vector Search backend (production).

Collections in MONGODB_DATABASE:
  tracks    one document per track: the Track fields and ``vector`` (the track vector)
  segments  one document per window: track_id, i, start, end, ``vector`` and the filter fields
            of its track (atlas/filters.py: file, album, artist, tags, ...), so segment search filters in Atlas
  meta      {"_id": "embedder", name, version, dim, window_dim}

Vectors are stored as BSON float32 vectors (binData subtype 9): half the size of an array of
doubles, and Atlas indexes them directly. A track becomes visible when its ``tracks`` document
is written, after its segments: a failed add leaves only unreferenced segments, which searches
ignore and the next remove/add of that id deletes.
"""

import contextlib
import re
import time
from urllib.parse import urlsplit

import numpy as np

from audiofind.index.atlas.filters import ARRAY_PATHS, SEGMENT_FIELDS, vector_filter
from audiofind.index.atlas.definitions import ensure_indexes, search_index
from audiofind.index.base import DuplicateAudio, EmbedderMismatch, Hit, Index, IndexUnavailable, Track

TRACKS_INDEX = "tracks_vector"
SEGMENTS_INDEX = "segments_vector"
MAX_CANDIDATES = 10000  # Atlas' limit for numCandidates
TRACK_FIELDS = tuple(Track.__dataclass_fields__)
UPDATABLE = {"title", "group_id", "labels", "envelope", "storage_key", *SEGMENT_FIELDS} - {"file"}  # filter fields too
VECTOR_SUBTYPE = 9
FLOAT32 = b"\x27\x00"  # dtype byte and padding byte of a float32 BSON vector


def to_bson_vector(vector):
    from bson.binary import Binary

    return Binary(FLOAT32 + np.asarray(vector, dtype="<f4").tobytes(), VECTOR_SUBTYPE)


def from_bson_vector(value) -> np.ndarray:
    if isinstance(value, (list, tuple)):  # written by another client as an array of numbers
        return np.asarray(value, dtype=np.float32)
    data = bytes(value)
    if data[:1] != FLOAT32[:1]:
        raise IndexUnavailable("stored vector is not a float32 vector; re-run `audiofind move-up` or re-index")
    return np.frombuffer(data[2:], dtype="<f4").astype(np.float32)


def describe_error(exc, config) -> IndexUnavailable:
    """A pymongo error as an IndexUnavailable that says what to do (never prints the password)."""
    from pymongo.errors import ConnectionFailure, OperationFailure, ServerSelectionTimeoutError

    host = urlsplit(config.get("MONGODB_URI") or "").hostname or "?"
    if isinstance(exc, (ServerSelectionTimeoutError, ConnectionFailure)):
        return IndexUnavailable(f"cannot reach MongoDB at {host} (AUDIOFIND_MONGODB_URI): {str(exc)[:300]}")
    if isinstance(exc, OperationFailure):
        text = str(exc)
        if "vectorSearch" in text or "SearchIndex" in text or "search index" in text.lower() or exc.code in (
            31082,  # "Using Atlas Search Database Commands ... requires additional configuration"
            6047401,
            40324,  # unrecognized pipeline stage
        ):
            return IndexUnavailable(
                f"MongoDB at {host} has no Atlas Vector Search ({text[:200]}): use an Atlas cluster or "
                "the Atlas local deployment (mongodb/mongodb-atlas-local)"
            )
        if exc.code in (13, 18, 8000):
            return IndexUnavailable(f"MongoDB at {host} refused the credentials or the action: {text[:200]}")
        return IndexUnavailable(f"MongoDB error at {host}: {text[:300]}")
    return IndexUnavailable(f"MongoDB error at {host}: {str(exc)[:300]}")


def _text_match(query) -> dict:
    """The tracks whose file, title, artist or album contain ``query``, any case (all for an empty query)."""
    if not query:
        return {}
    pattern = {"$regex": re.escape(query), "$options": "i"}
    return {"$or": [{field: pattern} for field in ("file", "title", "artist", "album")]}


def _is_duplicate_hash(exc) -> bool:
    from pymongo.errors import BulkWriteError, DuplicateKeyError

    if isinstance(exc, DuplicateKeyError):
        return "content_hash" in str(exc)
    if isinstance(exc, BulkWriteError):
        return any(e.get("code") == 11000 and "content_hash" in str(e) for e in exc.details.get("writeErrors", []))
    return False


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


def vector_search_pipeline(index, vector, limit, num_candidates, filter_, fields=("_id",)) -> list:
    stage = {
        "index": index,
        "path": "vector",
        "queryVector": [float(x) for x in np.asarray(vector, dtype=np.float32)],
        "numCandidates": int(num_candidates),
        "limit": int(limit),
    }
    if filter_:
        stage["filter"] = filter_
    project = {name: 1 for name in fields}
    project["score"] = {"$meta": "vectorSearchScore"}
    return [{"$vectorSearch": stage}, {"$project": project}]


def dot_from_score(score: float) -> float:
    """Atlas reports dotProduct similarity as (1 + dot) / 2; the local backend's score is the dot."""
    return 2.0 * float(score) - 1.0


class AtlasIndex(Index):
    name = "atlas"

    def __init__(self, config, database=None):
        super().__init__(config)
        self._client = None
        self._db = database  # tests pass a fake database
        self._ready = set()  # search indexes seen queryable with the right dimensions
        self._pending = {}  # track_id -> (present, filter fields, windows) written but maybe not yet searchable

    # -- connection and errors
    @property
    def db(self):
        if self._db is None:
            self._client, self._db = connect(self.config)
        return self._db

    @contextlib.contextmanager
    def _guard(self):
        from pymongo.errors import PyMongoError

        try:
            yield
        except PyMongoError as exc:
            raise describe_error(exc, self.config) from None

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None
            self._db = None

    def check(self) -> None:
        """Readiness: MongoDB answers and, once the catalog has an embedder, both search indexes are queryable."""
        with self._guard():
            self.db.command("ping")
        identity = self.embedder_identity()
        if identity is None:
            return  # a new catalog: its indexes are created with the first track (or by `audiofind migrate`)
        self._ready.clear()
        self._check_search_index("tracks", TRACKS_INDEX, int(identity["dim"]))
        self._check_search_index("segments", SEGMENTS_INDEX, int(identity["window_dim"]))

    def num_candidates(self, limit: int) -> int:
        factor = int(self.config.get("ATLAS_NUM_CANDIDATES_FACTOR") or 20)
        return max(limit, min(MAX_CANDIDATES, max(limit * factor, 100)))

    # -- embedder identity
    def embedder_identity(self):
        with self._guard():
            doc = self.db["meta"].find_one({"_id": "embedder"})
        return {k: v for k, v in doc.items() if k != "_id"} if doc else None

    def set_embedder_identity(self, identity):
        identity = dict(identity)
        for key in ("dim", "window_dim"):
            if not isinstance(identity.get(key), int) or identity[key] <= 0:
                raise ValueError(f"embedder identity needs a positive integer {key!r}: {identity!r}")
        current = self.embedder_identity()
        if current is not None and current != identity and self.count():
            raise EmbedderMismatch(
                f"the Atlas catalog {self.config.get('MONGODB_DATABASE') or 'audiofind'} holds {self.count()} tracks "
                f"embedded by {current}, not {identity}; re-index into a new MONGODB_DATABASE instead of mixing them"
            )
        with self._guard():
            self.db["meta"].replace_one({"_id": "embedder"}, {"_id": "embedder", **identity}, upsert=True)
            # A new catalog gets its search indexes now, sized for this embedder.
            ensure_indexes(self.db, identity, wait=True, timeout=float(self.config.get("ATLAS_INDEX_TIMEOUT") or 600))
        self._ready.clear()

    def _identity_or_fail(self) -> dict:
        identity = self.embedder_identity()
        if identity is None:
            raise IndexUnavailable("the Atlas catalog has no embedder yet: set_embedder_identity first")
        return identity

    # -- tracks
    def add(self, track, vector, windows, window_vectors):
        self.add_many([(track, vector, windows, window_vectors)])

    def add_many(self, entries) -> None:
        """Add (track, vector, windows, window_vectors) tuples: segments first, then the track documents."""
        identity = self._identity_or_fail()
        tracks, segments = [], []
        for entry in entries:
            doc, segs = self._documents(identity, *entry)
            tracks.append(doc)
            segments.extend(segs)
        if not tracks:
            return
        ids = [doc["_id"] for doc in tracks]
        if len(set(ids)) != len(ids):
            raise ValueError("the same track id twice in one batch")
        with self._guard():
            taken = [doc["_id"] for doc in self.db["tracks"].find({"_id": {"$in": ids}}, {"_id": 1})]
            if taken:
                raise ValueError(f"track {taken[0]} is already in the index")
            for doc in tracks:
                self._refuse_duplicate(doc["content_hash"])
            self.db["segments"].delete_many({"track_id": {"$in": ids}})  # leftovers of a failed add
            try:
                if segments:
                    self.db["segments"].insert_many(segments, ordered=False)
                self._insert_tracks(tracks)  # the tracks become visible here
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    self.db["tracks"].delete_many({"_id": {"$in": ids}})
                    self.db["segments"].delete_many({"track_id": {"$in": ids}})
                if _is_duplicate_hash(exc):  # a concurrent ingest of the same audio won (unique index)
                    for doc in tracks:
                        self._refuse_duplicate(doc["content_hash"])
                raise
        windows = {}
        for seg in segments:
            windows[seg["track_id"]] = windows.get(seg["track_id"], 0) + 1
        for track_id in ids:
            self._pending[track_id] = (True, {}, windows.get(track_id, 0))

    def _refuse_duplicate(self, content_hash):
        same = self.find_by_hash(content_hash)
        if same is not None:
            raise DuplicateAudio(same)

    def _insert_tracks(self, docs):
        if len(docs) == 1:
            self.db["tracks"].insert_one(docs[0])
        else:
            self.db["tracks"].insert_many(docs, ordered=True)

    @staticmethod
    def _documents(identity, track, vector, windows, window_vectors):
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        window_vectors = np.asarray(window_vectors, dtype=np.float32)
        windows = np.asarray(windows, dtype=np.float32).reshape(-1, 2)
        if vector.shape[0] != int(identity["dim"]):
            raise EmbedderMismatch(
                f"track vector has {vector.shape[0]} dimensions but the catalog's embedder "
                f"{identity['name']} has {identity['dim']}: re-index with the catalog's embedder"
            )
        if window_vectors.ndim != 2 or window_vectors.shape[1] != int(identity["window_dim"]):
            raise EmbedderMismatch(
                f"window vectors have shape {window_vectors.shape} but the catalog's embedder "
                f"{identity['name']} has {identity['window_dim']} dimensions per window"
            )
        if len(windows) != len(window_vectors):
            raise ValueError(f"{len(windows)} windows but {len(window_vectors)} window vectors")
        doc = {"_id": track.track_id, **track.to_dict(), "vector": to_bson_vector(vector)}
        shared = {field: doc[field] for field in SEGMENT_FIELDS}
        segments = [
            {
                "_id": f"{track.track_id}:{i}",
                "track_id": track.track_id,
                "i": i,
                "start": float(start),
                "end": float(end),
                **shared,
                "vector": to_bson_vector(row),
            }
            for i, ((start, end), row) in enumerate(zip(windows, window_vectors))
        ]
        return doc, segments

    def remove(self, track_id):
        with self._guard():
            removed = self.db["tracks"].delete_one({"_id": track_id}).deleted_count > 0
            self.db["segments"].delete_many({"track_id": track_id})
        if removed:
            self._pending[track_id] = (False, {}, 0)
        return removed

    @staticmethod
    def _track(doc) -> Track:
        return Track(**{k: doc[k] for k in TRACK_FIELDS if k in doc})

    _NO_VECTOR = {"vector": 0}

    def get(self, track_id):
        with self._guard():
            doc = self.db["tracks"].find_one({"_id": track_id}, self._NO_VECTOR)
        return self._track(doc) if doc else None

    def get_many(self, track_ids, envelope=True):
        ids = list(dict.fromkeys(track_ids))
        if not ids:
            return {}
        projection = self._NO_VECTOR if envelope else {**self._NO_VECTOR, "envelope": 0}
        with self._guard():
            docs = list(self.db["tracks"].find({"_id": {"$in": ids}}, projection))
        return {doc["_id"]: self._track(doc) for doc in docs}

    def find_by_hash(self, content_hash):
        with self._guard():
            doc = self.db["tracks"].find_one({"content_hash": content_hash}, self._NO_VECTOR)
        return self._track(doc) if doc else None

    def find_by_file(self, file):
        with self._guard():
            docs = list(self.db["tracks"].find({"file": file}, self._NO_VECTOR).sort([("created_at", -1), ("_id", -1)]))
        return [self._track(doc) for doc in docs]

    def list(self, offset=0, limit=50, query=""):
        with self._guard():
            cursor = (
                self.db["tracks"]
                .find(_text_match(query), self._NO_VECTOR)
                .sort([("created_at", -1), ("_id", -1)])
                .skip(int(offset))
                .limit(int(limit))
            )
            return [self._track(doc) for doc in cursor]

    def page(self, limit, query="", cursor=""):
        where = _text_match(query)
        if cursor:  # created_at:_id of the last track of the page before, the sort's own keys
            created, _, last_id = cursor.partition(":")
            try:
                created = float(created)
            except ValueError:
                raise ValueError(f"not a cursor of this catalog: {cursor[:40]!r}") from None
            after = {"$or": [{"created_at": {"$lt": created}}, {"created_at": created, "_id": {"$lt": last_id}}]}
            where = {"$and": [where, after]} if where else after
        with self._guard():
            docs = list(self.db["tracks"].find(where, self._NO_VECTOR).sort([("created_at", -1), ("_id", -1)])
                        .limit(int(limit)))
        following = f"{docs[-1]['created_at']!r}:{docs[-1]['_id']}" if len(docs) == limit else None
        return [self._track(doc) for doc in docs], following

    def count(self, query=""):
        with self._guard():
            return self.db["tracks"].count_documents(_text_match(query))

    def update(self, track_id, fields):
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))}; updatable: {', '.join(sorted(UPDATABLE))}")
        if not fields:
            return
        with self._guard():
            if self.db["tracks"].update_one({"_id": track_id}, {"$set": dict(fields)}).matched_count == 0:
                raise KeyError(track_id)
            shared = {k: v for k, v in fields.items() if k in SEGMENT_FIELDS}
            if shared:
                self.db["segments"].update_many({"track_id": track_id}, {"$set": shared})
                _, before, windows = self._pending.get(track_id, (True, {}, 0))
                self._pending[track_id] = (True, {**before, **shared}, windows)

    # -- vectors
    def track_vector(self, track_id):
        with self._guard():
            doc = self.db["tracks"].find_one({"_id": track_id}, {"vector": 1})
        if not doc:
            raise KeyError(track_id)
        return from_bson_vector(doc["vector"])

    def all_vectors(self):
        with self._guard():
            docs = list(self.db["tracks"].find({}, {"vector": 1}))
        dim = (self.embedder_identity() or {}).get("dim", 0)
        vectors = np.stack([from_bson_vector(d["vector"]) for d in docs]) if docs else np.zeros((0, dim), np.float32)
        return [d["_id"] for d in docs], vectors

    def track_vectors(self, track_ids):
        with self._guard():
            docs = {d["_id"]: d for d in self.db["tracks"].find({"_id": {"$in": list(track_ids)}}, {"vector": 1})}
        missing = [i for i in track_ids if i not in docs]
        if missing:
            raise KeyError(missing[0])
        return super().track_vectors([]) if not track_ids else np.stack(
            [from_bson_vector(docs[i]["vector"]) for i in track_ids])

    def vector_sample(self, size):
        with self._guard():
            docs = list(self.db["tracks"].aggregate([{"$sample": {"size": int(size)}}, {"$project": {"vector": 1}}]))
        dim = (self.embedder_identity() or {}).get("dim", 0)
        return np.stack([from_bson_vector(d["vector"]) for d in docs]) if docs else np.zeros((0, dim), np.float32)

    def segments(self, track_id):
        with self._guard():
            fields = {"start": 1, "end": 1, "vector": 1}
            docs = list(self.db["segments"].find({"track_id": track_id}, fields).sort("i", 1))
        if not docs and self.get(track_id) is None:
            raise KeyError(track_id)
        identity = self.embedder_identity() or {}
        windows = np.array([[d["start"], d["end"]] for d in docs], dtype=np.float32).reshape(-1, 2)
        if docs:
            vectors = np.stack([from_bson_vector(d["vector"]) for d in docs])
        else:
            vectors = np.zeros((0, int(identity.get("window_dim", 0))), dtype=np.float32)
        return windows, vectors

    # -- search
    def _check_search_index(self, collection, name, dims):
        """Atlas answers an unknown index with no results; say so instead of returning nothing."""
        if (name, dims) in self._ready:
            return
        with self._guard():
            info = search_index(self.db[collection], name)
        if info is None:
            raise IndexUnavailable(
                f"Atlas search index {name!r} on {collection!r} does not exist: run `audiofind migrate`"
            )
        if not info.get("queryable"):
            raise IndexUnavailable(
                f"Atlas search index {name!r} is not ready yet (status {info.get('status', '?')}): "
                "wait for it, or run `audiofind migrate`, which waits"
            )
        fields = (info.get("latestDefinition") or {}).get("fields", [])
        built = next((f.get("numDimensions") for f in fields if f.get("type") == "vector"), None)
        if built is not None and int(built) != int(dims):
            raise EmbedderMismatch(
                f"Atlas search index {name!r} is built for {built} dimensions but the catalog's embedder has "
                f"{dims}: run `audiofind migrate`"
            )
        if info.get("status") == "READY":
            self._ready.add((name, dims))

    def _vector_search(self, collection, index, vector, limit, filter_, fields=("_id",)):
        pipeline = vector_search_pipeline(index, vector, limit, self.num_candidates(limit), filter_, fields)
        with self._guard():
            return list(self.db[collection].aggregate(pipeline))

    def search(self, vector, limit, filters):
        if limit <= 0:
            return []
        identity = self.embedder_identity()
        if identity is None:
            return []  # an empty catalog
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != int(identity["dim"]):
            raise EmbedderMismatch(
                f"query vector has {vector.shape[0]} dimensions but the catalog's embedder "
                f"{identity['name']} has {identity['dim']}"
            )
        self._check_search_index("tracks", TRACKS_INDEX, int(identity["dim"]))
        rows = self._vector_search("tracks", TRACKS_INDEX, vector, int(limit), vector_filter(filters))
        return [Hit(track_id=row["_id"], score=dot_from_score(row["score"])) for row in rows]

    def search_segments(self, window_vectors, limit, filters):
        if limit <= 0:
            return []
        identity = self.embedder_identity()
        if identity is None:
            return []
        query = np.asarray(window_vectors, dtype=np.float32)
        if query.ndim != 2 or query.shape[1] != int(identity["window_dim"]):
            raise EmbedderMismatch(
                f"query windows have shape {query.shape} but the catalog's embedder "
                f"{identity['name']} has {identity['window_dim']} dimensions per window"
            )
        if len(query) == 0:
            return []
        self._check_search_index("segments", SEGMENTS_INDEX, int(identity["window_dim"]))
        filter_ = vector_filter(filters)
        # Candidates: the nearest catalog windows of (at most ATLAS_SEGMENT_QUERY_WINDOWS evenly spread)
        # query windows. Each track is then scored exactly over all its windows and all query windows.
        most = int(self.config.get("ATLAS_SEGMENT_QUERY_WINDOWS") or 32)
        picks = np.unique(np.linspace(0, len(query) - 1, min(len(query), most)).round().astype(int))
        per_window = min(1000, max(10 * int(limit), 50))
        approx = {}  # track_id -> [best score per picked query window]
        for j, q in enumerate(query[picks]):
            for row in self._vector_search("segments", SEGMENTS_INDEX, q, per_window, filter_, ("track_id",)):
                best = approx.setdefault(row["track_id"], np.full(len(picks), -1.0))
                best[j] = max(best[j], dot_from_score(row["score"]))
        if not approx:
            return []
        # Rerank the most promising candidates exactly (their windows are fetched, so keep that set small).
        keep = max(3 * int(limit), 30)
        candidates = sorted(approx, key=lambda t: -float(approx[t].mean()))[:keep]
        tracks = self.get_many(candidates)
        candidates = [t for t in candidates if t in tracks and filters.matches(tracks[t])]
        with self._guard():
            docs = list(
                self.db["segments"].find(
                    {"track_id": {"$in": candidates}}, {"track_id": 1, "start": 1, "end": 1, "vector": 1}
                )
            )
        by_track = {}
        for doc in docs:
            by_track.setdefault(doc["track_id"], []).append(doc)
        hits = []
        for track_id in candidates:
            rows = by_track.get(track_id)
            if not rows:
                continue
            vectors = np.stack([from_bson_vector(d["vector"]) for d in rows])
            sims = query @ vectors.T  # (query windows, catalog windows)
            score = float(sims.max(axis=1).mean())
            best = rows[int(np.unravel_index(int(np.argmax(sims)), sims.shape)[1])]
            hits.append(Hit(track_id, score, float(best["start"]), float(best["end"])))
        hits.sort(key=lambda h: (-h.score, h.track_id))
        return hits[: int(limit)]

    # -- Atlas search indexes are eventually consistent with the collections
    def _visible(self, collection, index, dims, filter_, limit) -> list:
        probe = np.zeros(dims, dtype=np.float32)
        probe[0] = 1.0
        pipeline = vector_search_pipeline(index, probe, limit, min(MAX_CANDIDATES, max(2 * limit, 100)), filter_,
                                          ("track_id",))
        with self._guard():
            return [row.get("track_id") for row in self.db[collection].aggregate(pipeline)]

    def _caught_up(self, identity) -> bool:
        indexes = (
            ("tracks", TRACKS_INDEX, int(identity["dim"])),
            ("segments", SEGMENTS_INDEX, int(identity["window_dim"])),
        )
        # Added tracks, in batches by id: each must show once in tracks and with all its windows in segments.
        added = [(t, w) for t, (present, fields, w) in self._pending.items() if present and not fields]
        while added:
            batch, total = [], 0
            while added and len(batch) < 1000 and total + added[0][1] <= MAX_CANDIDATES:
                batch.append(added[0][0])
                total += added.pop(0)[1]
            if not batch:  # one track with more windows than a query may return: check its track only
                batch, total = [added.pop(0)[0]], 0
            for collection, index, dim in indexes:
                expected = len(batch) if collection == "tracks" else total
                seen = self._visible(collection, index, dim, {"track_id": {"$in": batch}}, expected) if expected else []
                if len(seen) < expected:
                    return False
        # Removed tracks must be gone; updated ones must match their new filter values.
        for track_id, (present, fields, _) in self._pending.items():
            if present and not fields:
                continue
            clauses = [{"track_id": {"$eq": track_id}}]
            for field, value in fields.items():
                if field in ARRAY_PATHS:
                    clauses += [{"tags": {"$eq": tag}} for tag in value]
                elif value is not None and value != "":
                    clauses.append({field: {"$eq": value}})
            for collection, index, dim in indexes:
                seen = self._visible(collection, index, dim, {"$and": clauses}, 1)
                if bool(seen) != present:
                    return False
        return True

    def wait_searchable(self, timeout=None) -> None:
        """Block until this instance's writes show in $vectorSearch (Atlas indexes them asynchronously)."""
        if not self._pending:
            return
        timeout = float(timeout or self.config.get("ATLAS_INDEX_TIMEOUT") or 600)
        identity = self._identity_or_fail()
        deadline = time.monotonic() + timeout
        while not self._caught_up(identity):
            if time.monotonic() > deadline:
                raise IndexUnavailable(f"Atlas search indexes did not catch up with the last writes in {timeout:.0f} s")
            time.sleep(0.25)
        self._pending.clear()
