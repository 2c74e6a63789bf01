"""The embedded index: metadata in SQLite (WAL), vectors in append-only float32 files beside it.

Files in DATA_DIR:
  catalog.sqlite3        tracks (metadata, row numbers into the vector files), meta (embedder, counters)
  track_vectors.<n>.f32  N x dim float32, row ``vec_row`` of a track
  window_vectors.<n>.f32 M x window_dim float32, rows ``win_row .. win_row + win_count`` of a track
                         (<n> is meta 'files': compact() writes new files and switches in one commit)
  catalog.lock           fcntl lock held by writers (several processes share the catalog)
  *.usearch              approximate (HNSW) indexes, used above ANN_THRESHOLD tracks

Vectors are written and fsynced before the SQLite transaction that references them, so a crash leaves
at most unreferenced rows, which ``compact()`` reclaims. Every write bumps a generation counter in
the meta table; readers check it once per search and refresh their cached row mapping.
"""

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

from audiofind.config import data_dir
from audiofind.hookspecs import hookimpl
from audiofind.index.base import (
    DuplicateAudio,
    EmbedderMismatch,
    Filters,
    Hit,
    Index,
    IndexUnavailable,
    Track,
)

logger = logging.getLogger(__name__)
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tracks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    track_id TEXT NOT NULL UNIQUE,
    file TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    duration REAL NOT NULL,
    embedder TEXT NOT NULL,
    storage_key TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    artist TEXT NOT NULL DEFAULT '',
    album TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '[]',
    bpm REAL,
    group_id TEXT NOT NULL DEFAULT '',
    envelope TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    vec_row INTEGER NOT NULL,
    win_row INTEGER NOT NULL,
    win_count INTEGER NOT NULL,
    windows BLOB NOT NULL  -- float32 (win_count, 2): start, end in seconds
);
CREATE INDEX IF NOT EXISTS tracks_hash ON tracks (content_hash);
CREATE INDEX IF NOT EXISTS tracks_file ON tracks (file);
"""

_TRACK_COLUMNS = (
    "track_id", "file", "content_hash", "duration", "embedder", "storage_key", "title", "artist", "album",
    "tags", "labels", "bpm", "group_id", "envelope", "created_at",
)  # fmt: skip
_JSON_FIELDS = ("tags", "labels", "envelope")
_UPDATABLE = set(_TRACK_COLUMNS) - {"track_id", "content_hash", "embedder"}
_SELECT = "SELECT " + ", ".join(_TRACK_COLUMNS) + " FROM tracks"
_SELECT_NO_ENVELOPE = _SELECT.replace("envelope", "'[]'")

# Searches over fewer rows than this gather the rows; above it they scan the whole file (sequential is faster).
_GATHER_FRACTION = 0.25
_CHUNK_ROWS = 16384
# Approximate search: filtered subsets up to this many rows are scanned exactly instead, and so are
# those so narrow that the over-fetch would exceed _ANN_MAX_FETCH candidates.
_EXACT_SUBSET = 5000
_ANN_MAX_FETCH = 20000
_ANN_FETCH = 50  # candidates fetched per query (at least), re-scored exactly
_ANN_BATCH = 1000  # rows appended before the writer folds them into the saved HNSW index


def _ann_scale(dim: int) -> float:
    # usearch quantises to int8 as round(127 * x): spread unit vectors' components (about 1/sqrt(dim))
    # over the int8 range; a common factor does not change the inner-product ranking.
    return np.float32(np.sqrt(dim) / 4)


def _threads() -> int:
    return len(os.sched_getaffinity(0))


def _contains(haystack, needle):
    return needle in (haystack or "").casefold()


class _Snapshot:
    """What a search needs about the live tracks, as arrays; rebuilt or extended when the generation changes."""

    def __init__(self):
        self.generation = -1
        self.epoch = -1
        self.last_seq = 0
        self.track_ids = np.empty(0, dtype=object)
        self.files = np.empty(0, dtype=object)
        self.albums = np.empty(0, dtype=object)
        self.artists = np.empty(0, dtype=object)
        self.tags = []
        self.duration = np.empty(0)
        self.bpm = np.empty(0)
        self.vec_row = np.empty(0, dtype=np.int64)
        self.win_row = np.empty(0, dtype=np.int64)
        self.win_count = np.empty(0, dtype=np.int64)
        self.position = {}  # track_id -> position in these arrays
        self.maps = (None, None)  # memmaps of the track and window vector files
        self.ann = {}  # meta 'ann_tracks' / 'ann_windows': which HNSW file covers which rows
        self._tag_index = None
        self._row_positions = {}

    def __len__(self):
        return len(self.track_ids)

    def extended(self, rows):
        new = _Snapshot()
        cols = list(zip(*rows)) if rows else [()] * 11
        new.track_ids = np.concatenate([self.track_ids, np.array(cols[1], dtype=object)])
        new.files = np.concatenate([self.files, np.array(cols[2], dtype=object)])
        new.albums = np.concatenate([self.albums, np.array(cols[3], dtype=object)])
        new.artists = np.concatenate([self.artists, np.array(cols[4], dtype=object)])
        new.tags = self.tags + [frozenset(json.loads(t)) for t in cols[5]]
        new.duration = np.concatenate([self.duration, np.array(cols[6], dtype=np.float64)])
        new.bpm = np.concatenate([self.bpm, np.array([np.nan if b is None else b for b in cols[7]], dtype=np.float64)])
        new.vec_row = np.concatenate([self.vec_row, np.array(cols[8], dtype=np.int64)])
        new.win_row = np.concatenate([self.win_row, np.array(cols[9], dtype=np.int64)])
        new.win_count = np.concatenate([self.win_count, np.array(cols[10], dtype=np.int64)])
        new.position = dict(self.position)
        for i, track_id in enumerate(cols[1], start=len(self)):
            new.position[track_id] = i
        new.last_seq = max(self.last_seq, max(cols[0], default=0))
        return new

    def row_positions(self, kind: str) -> np.ndarray:
        """For each row of the track ("tracks") or window ("windows") vector file: its track's position, or -1."""
        if kind not in self._row_positions:
            vectors = self.maps[0 if kind == "tracks" else 1]
            rows = np.full(len(vectors), -1, dtype=np.int64)
            if kind == "tracks":
                rows[self.vec_row] = np.arange(len(self))
            else:
                rows[_span_rows(self.win_row, self.win_count)[0]] = np.repeat(np.arange(len(self)), self.win_count)
            self._row_positions[kind] = rows
        return self._row_positions[kind]

    def mask(self, filters: Filters | None) -> np.ndarray | None:
        """Boolean mask of the tracks that pass ``filters`` (Filters.matches semantics); None when all pass."""
        if filters is None:
            return None
        n = len(self)
        mask = np.ones(n, dtype=bool)
        narrowed = False
        for track_id in filters.exclude_track_ids:
            if track_id in self.position:
                mask[self.position[track_id]] = False
                narrowed = True
        for file in filters.exclude_files:
            mask &= self.files != file
            narrowed = True
        if filters.album:
            mask &= self.albums == filters.album
            narrowed = True
        if filters.artist:
            mask &= self.artists == filters.artist
            narrowed = True
        if filters.tags:
            if self._tag_index is None:
                index = {}
                for i, tags in enumerate(self.tags):
                    for tag in tags:
                        index.setdefault(tag, []).append(i)
                self._tag_index = {tag: np.array(rows, dtype=np.int64) for tag, rows in index.items()}
            for tag in filters.tags:
                has = np.zeros(n, dtype=bool)
                has[self._tag_index.get(tag, np.empty(0, dtype=np.int64))] = True
                mask &= has
            narrowed = True
        with np.errstate(invalid="ignore"):  # NaN bpm (unknown) fails every bpm bound, as in Filters.matches
            if filters.min_duration is not None:
                mask &= self.duration >= filters.min_duration
                narrowed = True
            if filters.max_duration is not None:
                mask &= self.duration <= filters.max_duration
                narrowed = True
            if filters.min_bpm is not None:
                mask &= self.bpm >= filters.min_bpm
                narrowed = True
            if filters.max_bpm is not None:
                mask &= self.bpm <= filters.max_bpm
                narrowed = True
        return mask if narrowed else None


def _text_match(query: str) -> tuple:
    """(WHERE clause, arguments) of tracks whose file, title, artist or album contain ``query``, any case."""
    if not query:
        return "", []
    columns = ("file", "title", "artist", "album")
    return " WHERE (" + " OR ".join(f"af_contains({c}, ?)" for c in columns) + ")", [query.casefold()] * len(columns)


def _span_rows(starts: np.ndarray, counts: np.ndarray) -> tuple:
    """Every row of the spans (start, count), in order, and where each span begins in that list."""
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return np.repeat(np.asarray(starts, dtype=np.int64) - offsets, counts) + np.arange(int(counts.sum())), offsets


def _top(scores: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the ``limit`` largest scores, best first (ties by position, so results are stable)."""
    if limit <= 0 or len(scores) == 0:
        return np.empty(0, dtype=np.int64)
    if limit < len(scores):
        part = np.argpartition(-scores, limit - 1)[:limit]
    else:
        part = np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]


class LocalIndex(Index):
    name = "local"

    def __init__(self, config):
        super().__init__(config)
        self.root = data_dir(config)
        self.db_path = self.root / "catalog.sqlite3"
        self.lock_path = self.root / "catalog.lock"
        self.ann_threshold = int(config.get("ANN_THRESHOLD", 20000) or 0)
        self._local = threading.local()
        self._refresh_lock = threading.Lock()
        self._snapshot = _Snapshot()
        self._ann_views = {}
        with self._write_lock():
            self._migrate()

    # -- plumbing
    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.create_function("af_contains", 2, _contains, deterministic=True)
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _write_lock(self):
        with open(self.lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _transaction(self):
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _migrate(self):
        conn = self._db()
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            with self._transaction() as c:
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                c.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0'), ('epoch', '0'), ('files', '0')")
        elif row[0] > SCHEMA_VERSION:
            raise IndexUnavailable(
                f"{self.db_path}: schema version {row[0]} is newer than this Audio Find ({SCHEMA_VERSION}); upgrade it"
            )
        # Future versions migrate in place here: `if row[0] < 2: ...; UPDATE schema_version`.

    def _meta(self, key, conn=None):
        row = (conn or self._db()).execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _paths(self, files) -> tuple:
        """(track vector file, window vector file) of the files generation ``files`` (meta 'files')."""
        return self.root / f"track_vectors.{files}.f32", self.root / f"window_vectors.{files}.f32"

    @staticmethod
    def _bump(conn, epoch=False):
        conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        if epoch:  # not a pure append: readers reload everything
            conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'epoch'")

    @staticmethod
    def _row_to_track(row) -> Track:
        values = dict(zip(_TRACK_COLUMNS, row))
        for key in _JSON_FIELDS:
            values[key] = json.loads(values[key])
        return Track(**values)

    # -- embedder identity
    def embedder_identity(self) -> dict | None:
        value = self._meta("embedder")
        return None if value is None else json.loads(value)

    def set_embedder_identity(self, identity: dict) -> None:
        for key in ("dim", "window_dim"):
            if not isinstance(identity.get(key), int) or identity[key] <= 0:
                raise ValueError(f"embedder identity needs a positive integer {key!r}: {identity!r}")
        with self._write_lock(), self._transaction() as conn:
            current = self._meta("embedder", conn)
            count = conn.execute("SELECT COUNT(*) FROM tracks").fetchone()[0]
            if current is not None and json.loads(current) != identity and count:
                raise EmbedderMismatch(
                    f"the catalog in {self.root} holds {count} tracks embedded by {json.loads(current)}, "
                    f"not {identity}; re-index it with the new embedder (a fresh DATA_DIR) instead of mixing them"
                )
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('embedder', ?)", (json.dumps(identity, sort_keys=True),))
            if current is not None and json.loads(current) != identity:
                # An emptied catalog changes embedder: start new vector files (the old rows have another width).
                files = int(self._meta("files", conn))
                conn.execute("UPDATE meta SET value = ? WHERE key = 'files'", (str(files + 1),))
                conn.execute("DELETE FROM meta WHERE key LIKE 'ann_%'")
            self._bump(conn, epoch=True)
        for path in list(self.root.glob("*_vectors.*.f32")) + list(self.root.glob("*.usearch")):
            if path.name.split(".")[1] != self._meta("files"):
                path.unlink(missing_ok=True)

    def _require_identity(self) -> dict:
        identity = self.embedder_identity()
        if identity is None:
            raise IndexUnavailable(f"the catalog in {self.root} has no embedder yet: set_embedder_identity first")
        return identity

    # -- tracks
    def add(self, track: Track, vector: np.ndarray, windows: np.ndarray, window_vectors: np.ndarray) -> None:
        self.add_many([(track, vector, windows, window_vectors)])

    def add_many(self, entries) -> None:
        """Add (track, vector, windows, window_vectors) tuples in one write: all of them or none."""
        identity = self._require_identity()
        checked, seen = [], set()
        for track, vector, windows, window_vectors in entries:
            checked.append(self._checked(identity, track, vector, windows, window_vectors))
            if track.track_id in seen:
                raise ValueError(f"track {track.track_id} is given twice")
            seen.add(track.track_id)
        if not checked:
            return
        with self._write_lock():
            ids = [c[0].track_id for c in checked]
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                sql = f"SELECT track_id FROM tracks WHERE track_id IN ({', '.join('?' * len(chunk))})"
                existing = self._db().execute(sql, chunk).fetchone()
                if existing:
                    raise ValueError(f"track {existing[0]} is already in the catalog")
            for track in (c[0] for c in checked):  # under the lock: two ingests of one file add one track
                same = self.find_by_hash(track.content_hash)
                if same is not None:
                    raise DuplicateAudio(same)
            track_path, window_path = self._paths(self._meta("files"))
            vec_row = self._append(track_path, np.stack([c[1] for c in checked]))
            win_row = self._append(window_path, np.concatenate([c[3] for c in checked]))
            rows = []
            for track, _, windows, window_vectors in checked:
                rows.append((track, vec_row, win_row, windows))
                vec_row, win_row = vec_row + 1, win_row + len(window_vectors)
            self._insert_tracks(rows)
            if self.ann_threshold:
                # The tracks are in: a failure to extend the ANN index must not fail the add (the next add, or
                # `audiofind build-ann`, extends it; searches are exact over what it does not cover yet).
                try:
                    tracks, windows = self._db().execute("SELECT COUNT(*), SUM(win_count) FROM tracks").fetchone()
                    if tracks > self.ann_threshold:
                        self._extend_ann("tracks")
                    if (windows or 0) > self.ann_threshold:
                        self._extend_ann("windows")
                except Exception:
                    logger.exception("could not extend the ANN index after adding %s", ids)

    @staticmethod
    def _checked(identity, track, vector, windows, window_vectors):
        vector = np.ascontiguousarray(vector, dtype=np.float32)
        windows = np.ascontiguousarray(windows, dtype=np.float32).reshape(-1, 2)
        window_vectors = np.ascontiguousarray(window_vectors, dtype=np.float32)
        if vector.shape != (identity["dim"],):
            raise EmbedderMismatch(
                f"track {track.file!r}: vector of shape {vector.shape}, the catalog's embedder "
                f"{identity.get('name', '')} makes {identity['dim']}-d vectors"
            )
        if window_vectors.ndim != 2 or window_vectors.shape[1] != identity["window_dim"]:
            raise EmbedderMismatch(
                f"track {track.file!r}: window vectors of shape {window_vectors.shape}, the catalog's embedder "
                f"{identity.get('name', '')} makes {identity['window_dim']}-d window vectors"
            )
        if len(windows) != len(window_vectors):
            raise ValueError(f"track {track.file!r}: {len(windows)} windows but {len(window_vectors)} window vectors")
        if not (np.isfinite(vector).all() and np.isfinite(window_vectors).all()):
            raise ValueError(f"track {track.file!r}: vectors contain NaN or infinity")
        if not track.created_at:
            track.created_at = time.time()
        return track, vector, windows, window_vectors

    @staticmethod
    def _append(path: Path, rows: np.ndarray) -> int:
        """Append rows to a vector file (caller holds the write lock); returns the first row number."""
        row_bytes = rows.shape[1] * 4
        with open(path, "ab") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size % row_bytes:  # a torn write from a crash: drop the partial, unreferenced row
                handle.truncate(size - size % row_bytes)
                size -= size % row_bytes
            if len(rows):
                handle.write(rows.tobytes())
                handle.flush()
                os.fsync(handle.fileno())
        return size // row_bytes

    def _insert_tracks(self, rows) -> None:
        """One transaction for [(track, vec_row, win_row, windows)] whose vectors are already on disk."""
        params = []
        for track, vec_row, win_row, windows in rows:
            values = track.to_dict()
            for key in _JSON_FIELDS:
                values[key] = json.dumps(values[key])
            params.append([values[c] for c in _TRACK_COLUMNS] + [vec_row, win_row, len(windows), windows.tobytes()])
        with self._transaction() as conn:
            conn.executemany(
                f"INSERT INTO tracks ({', '.join(_TRACK_COLUMNS)}, vec_row, win_row, win_count, windows) "
                f"VALUES ({', '.join('?' * (len(_TRACK_COLUMNS) + 4))})",
                params,
            )
            self._bump(conn)

    def remove(self, track_id: str) -> bool:
        with self._write_lock(), self._transaction() as conn:
            removed = conn.execute("DELETE FROM tracks WHERE track_id = ?", (track_id,)).rowcount > 0
            if removed:
                self._bump(conn, epoch=True)
        return removed

    def get(self, track_id: str) -> Track | None:
        row = self._db().execute(_SELECT + " WHERE track_id = ?", (track_id,)).fetchone()
        return None if row is None else self._row_to_track(row)

    def get_many(self, track_ids: list, envelope: bool = True) -> dict:
        found = {}
        ids = list(dict.fromkeys(track_ids))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            query = (_SELECT if envelope else _SELECT_NO_ENVELOPE) + f" WHERE track_id IN ({', '.join('?' * len(chunk))})"
            for row in self._db().execute(query, chunk):
                track = self._row_to_track(row)
                found[track.track_id] = track
        return found

    def find_by_hash(self, content_hash: str) -> Track | None:
        row = self._db().execute(_SELECT + " WHERE content_hash = ? ORDER BY seq LIMIT 1", (content_hash,)).fetchone()
        return None if row is None else self._row_to_track(row)

    def find_by_file(self, file: str) -> list:
        return [self._row_to_track(r) for r in self._db().execute(_SELECT + " WHERE file = ? ORDER BY seq DESC", (file,))]

    def list(self, offset: int = 0, limit: int = 50, query: str = "") -> list:
        where, args = _text_match(query)
        sql = _SELECT + where + " ORDER BY seq DESC LIMIT ? OFFSET ?"
        return [self._row_to_track(r) for r in self._db().execute(sql, args + [int(limit), int(offset)])]

    def page(self, limit: int, query: str = "", cursor: str = "") -> tuple:
        where, args = _text_match(query)
        if cursor:  # the seq of the last track of the page before: seq grows with every add
            if not cursor.isdigit():
                raise ValueError(f"not a cursor of this catalog: {cursor[:40]!r}")
            where, args = where + (" AND" if where else " WHERE") + " seq < ?", args + [int(cursor)]
        sql = f"SELECT seq, {', '.join(_TRACK_COLUMNS)} FROM tracks{where} ORDER BY seq DESC LIMIT ?"
        rows = self._db().execute(sql, args + [int(limit)]).fetchall()
        following = str(rows[-1][0]) if len(rows) == limit else None
        return [self._row_to_track(row[1:]) for row in rows], following

    def count(self, query: str = "") -> int:
        where, args = _text_match(query)
        return self._db().execute("SELECT COUNT(*) FROM tracks" + where, args).fetchone()[0]

    def update(self, track_id: str, fields: dict) -> None:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))} (updatable: {', '.join(sorted(_UPDATABLE))})")
        if not fields:
            if self.get(track_id) is None:
                raise KeyError(track_id)
            return
        values = {k: json.dumps(v) if k in _JSON_FIELDS else v for k, v in fields.items()}
        with self._write_lock(), self._transaction() as conn:
            sql = f"UPDATE tracks SET {', '.join(f'{k} = ?' for k in values)} WHERE track_id = ?"
            if conn.execute(sql, list(values.values()) + [track_id]).rowcount == 0:
                raise KeyError(track_id)
            self._bump(conn, epoch=True)

    # -- vectors
    def _rows(self, track_id):
        row = self._db().execute(
            "SELECT vec_row, win_row, win_count, windows, (SELECT value FROM meta WHERE key = 'files') "
            "FROM tracks WHERE track_id = ?",
            (track_id,),
        ).fetchone()
        if row is None:
            raise KeyError(track_id)
        return row[:4] + self._paths(row[4])

    def track_vector(self, track_id: str) -> np.ndarray:
        vec_row, _, _, _, path, _ = self._rows(track_id)
        dim = self._require_identity()["dim"]
        with open(path, "rb") as handle:
            handle.seek(vec_row * dim * 4)
            return np.frombuffer(handle.read(dim * 4), dtype=np.float32).copy()

    def segments(self, track_id: str) -> tuple:
        _, win_row, win_count, blob, _, path = self._rows(track_id)
        dim = self._require_identity()["window_dim"]
        with open(path, "rb") as handle:
            handle.seek(win_row * dim * 4)
            vectors = np.frombuffer(handle.read(win_count * dim * 4), dtype=np.float32).reshape(win_count, dim)
        return np.frombuffer(blob, dtype=np.float32).reshape(-1, 2).copy(), vectors.copy()

    def _window_times(self, track_id: str, index: int) -> tuple:
        blob = self._rows(track_id)[3]
        start, end = np.frombuffer(blob, dtype=np.float32).reshape(-1, 2)[index]
        return float(start), float(end)

    # -- the reader's cache
    def _refresh(self) -> _Snapshot:
        """The current snapshot; cheap when nothing changed (one SELECT of the counters)."""
        conn = self._db()
        counters = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('generation', 'epoch')").fetchall())
        generation, epoch = int(counters["generation"]), int(counters["epoch"])
        snap = self._snapshot
        if snap.generation == generation:
            return snap
        with self._refresh_lock:
            snap = self._snapshot
            if snap.generation == generation:
                return snap
            base = snap if snap.epoch == epoch else _Snapshot()
            # One read transaction so the rows and the counters agree.
            conn.execute("BEGIN")
            try:
                counters = dict(conn.execute("SELECT key, value FROM meta"))
                rows = conn.execute(
                    "SELECT seq, track_id, file, album, artist, tags, duration, bpm, vec_row, win_row, win_count "
                    "FROM tracks WHERE seq > ? ORDER BY seq",
                    (base.last_seq,),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
            new = base.extended(rows)
            new.generation, new.epoch = int(counters["generation"]), int(counters["epoch"])
            new.ann = {k[4:]: json.loads(v) for k, v in counters.items() if k.startswith("ann_")}
            identity = json.loads(counters["embedder"]) if "embedder" in counters else None
            if identity:
                track_path, window_path = self._paths(counters["files"])
                new.maps = (self._map(track_path, identity["dim"]), self._map(window_path, identity["window_dim"]))
            self._snapshot = new
            return new

    @staticmethod
    def _map(path: Path, dim: int):
        rows = path.stat().st_size // (dim * 4) if path.exists() else 0
        if rows == 0:
            return np.zeros((0, dim), dtype=np.float32)
        return np.memmap(path, dtype=np.float32, mode="r", shape=(rows, dim))

    # -- search
    def _query(self, vector, dim, what):
        q = np.asarray(vector, dtype=np.float32)
        if q.shape[-1] != dim:
            raise EmbedderMismatch(f"{what} of dimension {q.shape[-1]}, the catalog's embedder makes {dim}-d vectors")
        return q

    def search(self, vector: np.ndarray, limit: int, filters: Filters = None, exact: bool = False) -> list:
        """The ``limit`` best tracks by dot product. ``exact=True`` forces the exhaustive reference search."""
        snap = self._refresh()
        identity = self._require_identity() if len(snap) else None
        if identity is None:
            return []
        q = self._query(vector, identity["dim"], "query vector")
        mask = snap.mask(filters)
        if not exact and self._use_ann(snap):
            hits = self._ann_tracks(snap, q, limit, mask)
            if hits is not None:
                return hits
        positions, scores = self._exact_tracks(snap, q, mask)
        order = _top(scores, limit)
        return [Hit(snap.track_ids[positions[i]], float(scores[i])) for i in order]

    def _exact_tracks(self, snap, q, mask):
        """(positions, scores) of every live track passing ``mask``."""
        vectors = snap.maps[0]
        positions = np.arange(len(snap)) if mask is None else np.flatnonzero(mask)
        rows = snap.vec_row[positions]
        if len(rows) < _GATHER_FRACTION * len(vectors):
            order = np.argsort(rows)  # gather in file order
            scores = np.empty(len(rows), dtype=np.float32)
            for i in range(0, len(rows), _CHUNK_ROWS):
                part = order[i : i + _CHUNK_ROWS]
                scores[part] = vectors[rows[part]] @ q
        else:
            every = np.empty(len(vectors), dtype=np.float32)
            for i in range(0, len(vectors), _CHUNK_ROWS * 4):
                every[i : i + _CHUNK_ROWS * 4] = vectors[i : i + _CHUNK_ROWS * 4] @ q
            scores = every[rows]
        return positions, scores

    def search_segments(self, window_vectors: np.ndarray, limit: int, filters: Filters = None, exact: bool = False) -> list:
        """Per catalog track: mean over query windows of the best dot product with that track's windows."""
        snap = self._refresh()
        identity = self._require_identity() if len(snap) else None
        if identity is None:
            return []
        queries = self._query(window_vectors, identity["window_dim"], "query window vectors").reshape(
            -1, identity["window_dim"]
        )
        if len(queries) == 0:
            return []
        mask = snap.mask(filters)
        usable = snap.win_count > 0
        mask = usable if mask is None else mask & usable
        if not exact and self._use_ann(snap, "windows"):
            positions = self._ann_segment_candidates(snap, queries, limit, mask)
            if positions is not None:
                return self._exact_segments(snap, queries, positions, limit)
        return self._exact_segments(snap, queries, np.flatnonzero(mask), limit)

    def _exact_segments(self, snap, queries, positions, limit):
        windows = snap.maps[1]
        if len(positions) == 0:
            return []
        starts, counts = snap.win_row[positions], snap.win_count[positions]
        total = int(counts.sum())
        if total < _GATHER_FRACTION * len(windows):
            # Gather the candidates' windows into one block; each track's rows are then contiguous.
            rows, offsets = _span_rows(starts, counts)
            sims = np.empty((total, len(queries)), dtype=np.float32)
            for i in range(0, total, _CHUNK_ROWS):
                sims[i : i + _CHUNK_ROWS] = windows[rows[i : i + _CHUNK_ROWS]] @ queries.T
            seg_starts = offsets
            best = np.maximum.reduceat(sims, offsets, axis=0)
        else:
            sims = np.empty((len(windows), len(queries)), dtype=np.float32)
            for i in range(0, len(windows), _CHUNK_ROWS):
                sims[i : i + _CHUNK_ROWS] = windows[i : i + _CHUNK_ROWS] @ queries.T
            # Tracks' window ranges never overlap, so between consecutive boundaries lies one track or a gap.
            bounds = np.unique(np.concatenate([starts, starts + counts]))
            bounds = bounds[bounds < len(windows)]
            best = np.maximum.reduceat(sims, bounds, axis=0)[np.searchsorted(bounds, starts)]
            seg_starts = starts
        scores = best.mean(axis=1)
        hits = []
        for i in _top(scores, limit):
            block = sims[seg_starts[i] : seg_starts[i] + counts[i]]
            window = int(np.argmax(block.max(axis=1)))
            track_id = snap.track_ids[positions[i]]
            start, end = self._window_times(track_id, window)
            hits.append(Hit(track_id, float(scores[i]), start, end))
        return hits

    # -- approximate search (above ANN_THRESHOLD tracks)
    #
    # One HNSW index (usearch, int8-quantised inner product) over the track vectors and one over the window
    # vectors, keyed by row number, saved as <kind>.<files>.<n>.usearch and memory-mapped by readers.
    # Rows appended after the last save (the tail) are searched exactly; the writer folds the tail in (and
    # drops removed rows) once it exceeds _ANN_BATCH rows or 5 %. ANN candidates are re-scored exactly
    # against the float32 vectors, so scores are exact dot products; only the candidate set is approximate.
    def _use_ann(self, snap, kind="tracks") -> bool:
        """Tracks: above ANN_THRESHOLD tracks. Windows: above ANN_THRESHOLD window rows (the scan costs per row)."""
        rows = len(snap) if kind == "tracks" else int(snap.win_count.sum())
        return bool(self.ann_threshold) and rows > self.ann_threshold

    def _exact_subset(self) -> int:
        return min(_EXACT_SUBSET, self.ann_threshold)

    def _ann(self, snap, kind):
        """(HNSW view, its meta) for ``kind`` as the snapshot describes it, or None while none is built."""
        info = snap.ann.get(kind)
        if info is None:
            return None
        cached = self._ann_views.get(kind)
        if cached is not None and cached[0] == info:
            return cached[1], info
        path = self.root / info["file"]
        if not path.exists():
            return None
        from usearch.index import Index as Hnsw

        view = Hnsw.restore(str(path), view=True)
        self._ann_views[kind] = (info, view)
        return view, info

    def _ann_tracks(self, snap, q, limit, mask):
        """Hits from the HNSW candidates re-scored exactly, or None when exact search should answer."""
        ann = self._ann(snap, "tracks")
        selected = len(snap) if mask is None else int(mask.sum())
        if ann is None or selected <= self._exact_subset():
            return None  # small filtered subsets are cheaper (and exact) to scan
        view, info = ann
        vectors = snap.maps[0]
        # Over-fetch in proportion to what the filters and removed rows will take out.
        fetch = int(max(4 * limit, _ANN_FETCH) * len(snap) / selected * max(1.0, view.size / len(snap)))
        if fetch > _ANN_MAX_FETCH:
            return None
        keys = view.search(q * _ann_scale(len(q)), min(fetch, view.size), threads=1).keys.astype(np.int64)
        row_positions = snap.row_positions("tracks")
        positions = row_positions[keys[keys < len(row_positions)]]
        positions = positions[positions >= 0]
        tail = np.flatnonzero(snap.vec_row >= info["upto"])
        positions = np.concatenate([positions, tail])
        if mask is not None:
            positions = positions[mask[positions]]
        if len(positions) < min(limit, selected):
            return None  # too few survived the filters: exact filtered search keeps the contract
        rows = snap.vec_row[positions]
        order = np.argsort(rows)
        scores = np.empty(len(rows), dtype=np.float32)
        scores[order] = vectors[rows[order]] @ q
        return [Hit(snap.track_ids[positions[i]], float(scores[i])) for i in _top(scores, limit)]

    def _ann_segment_candidates(self, snap, queries, limit, mask):
        """Positions of the tracks worth scoring exactly for a segment query, or None for an exact scan."""
        ann = self._ann(snap, "windows")
        total = int(snap.win_count.sum())
        selected = int(snap.win_count[mask].sum())
        if ann is None or selected <= self._exact_subset():
            return None
        view, info = ann
        # A track's windows resemble each other, so the nearest windows come from few tracks: fetch enough
        # windows per query window to reach `wanted` distinct tracks (retrying once with more).
        wanted = max(5 * limit, _ANN_FETCH)
        per_track = total / max(1, int((snap.win_count > 0).sum()))
        fetch = wanted * per_track * total / selected * max(1.0, view.size / max(total, 1))
        for attempt in range(2):
            if fetch > _ANN_MAX_FETCH:
                return None
            approx, seen = self._ann_window_votes(snap, view, queries, int(min(fetch, view.size)), mask)
            if len(seen) >= wanted or fetch >= view.size:
                break
            fetch *= 4
        best = seen[_top(approx[seen], wanted)]
        tail = np.flatnonzero((snap.win_row + snap.win_count > info["upto"]) & mask)
        candidates = np.union1d(best, tail)
        if len(candidates) < min(limit, int(mask.sum())):
            return None
        return candidates

    @staticmethod
    def _ann_window_votes(snap, view, queries, fetch, mask):
        """(approximate score per track position, positions seen): per track, the sum over query windows
        of its best window among the HNSW hits."""
        matches = view.search(queries * _ann_scale(queries.shape[1]), fetch, threads=_threads())
        keys = matches.keys.reshape(len(queries), -1).astype(np.int64)
        sims = 1.0 - matches.distances.reshape(len(queries), -1)
        found = np.arange(keys.shape[1])[None, :] < np.asarray(matches.counts).reshape(-1, 1)
        row_positions = snap.row_positions("windows")
        found &= keys < len(row_positions)
        positions = np.where(found, row_positions[np.where(found, keys, 0)], -1)
        found &= positions >= 0
        found[found] &= mask[positions[found]]
        query_index = np.broadcast_to(np.arange(len(queries))[:, None], keys.shape)[found]
        positions, sims = positions[found], sims[found]
        order = np.lexsort((-sims, positions, query_index))
        pair = query_index[order] * len(snap) + positions[order]
        first = np.ones(len(pair), dtype=bool)
        first[1:] = pair[1:] != pair[:-1]
        approx = np.bincount(positions[order][first], weights=sims[order][first], minlength=len(snap))
        seen = np.flatnonzero(np.bincount(positions, minlength=len(snap)) > 0)
        return approx, seen

    def build_ann(self, rebuild: bool = False) -> dict:
        """Bring the HNSW indexes up to date now (add() does it by itself above ANN_THRESHOLD tracks)."""
        with self._write_lock():
            return {kind: self._extend_ann(kind, rebuild=rebuild, force=True) for kind in ("tracks", "windows")}

    def _extend_ann(self, kind: str, rebuild: bool = False, force: bool = False) -> dict | None:
        """Build the ``kind`` HNSW index if missing, or fold in the tail once it is large enough (holds the lock)."""
        identity = self.embedder_identity()
        if identity is None:
            return None
        conn = self._db()
        files = self._meta("files")
        dim = identity["dim" if kind == "tracks" else "window_dim"]
        vectors = self._map(self._paths(files)[0 if kind == "tracks" else 1], dim)
        info = json.loads(self._meta(f"ann_{kind}") or "null")
        old_path = self.root / info["file"] if info else None
        from usearch.index import Index as Hnsw

        if rebuild or info is None or not old_path.exists():
            index, upto, serial = None, 0, (info or {}).get("serial", 0)
        else:
            upto, serial = info["upto"], info["serial"]
            if not force and len(vectors) - upto < max(min(_ANN_BATCH, self.ann_threshold), 0.05 * info["size"]):
                return info
        if kind == "tracks":
            live = np.array([r for (r,) in conn.execute("SELECT vec_row FROM tracks")], dtype=np.int64)
        else:
            spans = np.array(conn.execute("SELECT win_row, win_count FROM tracks").fetchall(), dtype=np.int64)
            spans = spans.reshape(-1, 2)
            live = _span_rows(spans[:, 0], spans[:, 1])[0]
        live.sort()
        if upto:
            index = Hnsw.restore(str(old_path))
            covered = live[live < upto]
            if index.size > len(covered):  # rows removed since the last save
                dead = np.setdiff1d(np.asarray(index.keys, dtype=np.int64), covered)
                if len(dead):
                    index.remove(dead.astype(np.uint64))
        else:
            # Windows are many and only nominate candidates for exact scoring: a cheaper build does.
            expansion = 128 if kind == "tracks" else 64
            index = Hnsw(ndim=dim, metric="ip", dtype="i8", connectivity=16, expansion_add=expansion, expansion_search=64)
        todo = live[live >= upto]
        for i in range(0, len(todo), 65536):
            rows = todo[i : i + 65536]
            index.add(rows.astype(np.uint64), np.asarray(vectors[rows]) * _ann_scale(dim), threads=_threads())
        name = f"{kind}.{files}.{serial + 1}.usearch"
        partial = self.root / (name + ".part")
        index.save(str(partial))
        os.replace(partial, self.root / name)
        info = {"file": name, "upto": len(vectors), "size": index.size, "serial": serial + 1, "dtype": "i8"}
        with self._transaction() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"ann_{kind}", json.dumps(info)))
            self._bump(c)
        if old_path is not None and old_path.name != name:
            old_path.unlink(missing_ok=True)  # readers that mapped it keep it until they move on
        return info

    # -- maintenance
    def compact(self) -> dict:
        """Rewrite the vector files without unreferenced rows (removed tracks, crashed adds)."""
        identity = self.embedder_identity()
        if identity is None:
            return {"track_rows": 0, "window_rows": 0}
        with self._write_lock():
            conn = self._db()
            files = int(self._meta("files"))
            old_paths, new_paths = self._paths(files), self._paths(files + 1)
            rows = conn.execute("SELECT seq, vec_row, win_row, win_count FROM tracks ORDER BY seq").fetchall()
            old_tracks = self._map(old_paths[0], identity["dim"])
            old_windows = self._map(old_paths[1], identity["window_dim"])
            updates, next_win = [], 0
            with open(new_paths[0], "wb") as tracks_out, open(new_paths[1], "wb") as windows_out:
                for i, (seq, vec_row, win_row, win_count) in enumerate(rows):
                    tracks_out.write(np.ascontiguousarray(old_tracks[vec_row]).tobytes())
                    windows_out.write(np.ascontiguousarray(old_windows[win_row : win_row + win_count]).tobytes())
                    updates.append((i, next_win, seq))
                    next_win += win_count
                for handle in (tracks_out, windows_out):
                    handle.flush()
                    os.fsync(handle.fileno())
            reclaimed = {"track_rows": len(old_tracks) - len(rows), "window_rows": len(old_windows) - next_win}
            del old_tracks, old_windows
            # New row numbers and the new files switch in one commit; readers holding the old files keep them open.
            with self._transaction() as c:
                c.executemany("UPDATE tracks SET vec_row = ?, win_row = ? WHERE seq = ?", updates)
                c.execute("UPDATE meta SET value = ? WHERE key = 'files'", (str(files + 1),))
                c.execute("DELETE FROM meta WHERE key LIKE 'ann_%'")
                self._bump(c, epoch=True)
            for path in old_paths:
                path.unlink(missing_ok=True)
            self._drop_ann_files()
        return reclaimed

    def _drop_ann_files(self):
        files = self._meta("files")
        for path in self.root.glob("*.usearch"):
            if path.name.split(".")[1] != files:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        self._snapshot = _Snapshot()


@hookimpl
def register_indexes():
    return [LocalIndex]
