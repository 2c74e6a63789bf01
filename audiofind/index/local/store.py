"""The embedded index's storage: metadata in SQLite (WAL), vectors in append-only float32 files beside it.

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

The tracks table has a column per Track field: a field added to Track gets its column when the catalog is
next opened (``_add_columns``), so a new filter needs no hand-written migration.
"""

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
from dataclasses import MISSING, fields
from pathlib import Path

import numpy as np

from audiofind.index.base import IndexUnavailable, Track

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


TRACK_COLUMNS = tuple(f.name for f in fields(Track))
JSON_FIELDS = tuple(f.name for f in fields(Track) if f.default_factory is list)
UPDATABLE = set(TRACK_COLUMNS) - {"track_id", "content_hash", "embedder"}
_SELECT = "SELECT " + ", ".join(TRACK_COLUMNS) + " FROM tracks"
_SELECT_NO_ENVELOPE = _SELECT.replace("envelope", "'[]'")


def _column_sql(f) -> str:
    """The column definition of a Track field added after schema version 1."""
    if f.name in JSON_FIELDS:
        return "TEXT NOT NULL DEFAULT '[]'"
    default = f.default if f.default is not MISSING else None
    if isinstance(default, str):
        return "TEXT NOT NULL DEFAULT '" + default.replace("'", "''") + "'"
    if isinstance(default, bool):
        return f"INTEGER NOT NULL DEFAULT {int(default)}"
    if isinstance(default, (int, float)):
        return f"REAL NOT NULL DEFAULT {float(default)!r}"
    return "REAL"  # Optional[float]: NULL when unknown


def _contains(haystack, needle):
    return needle in (haystack or "").casefold()



def text_match(query: str) -> tuple:
    """(WHERE clause, arguments) of tracks whose file, title, artist or album contain ``query``, any case."""
    if not query:
        return "", []
    columns = ("file", "title", "artist", "album")
    return " WHERE (" + " OR ".join(f"af_contains({c}, ?)" for c in columns) + ")", [query.casefold()] * len(columns)



class Store:
    """The SQLite catalog and the vector files of one DATA_DIR; several processes share them."""

    def __init__(self, root: Path):
        self.root = root
        self.db_path = self.root / "catalog.sqlite3"
        self.lock_path = self.root / "catalog.lock"
        self._local = threading.local()
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

    def connection(self) -> sqlite3.Connection:
        """This thread's connection to catalog.sqlite3 (autocommit, WAL), for tables kept beside the catalog's
        (audiofind/index/shortlists_local.py)."""
        return self._db()

    @contextlib.contextmanager
    def _write_lock(self):
        with open(self.lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def transaction(self):
        """This thread's connection inside BEGIN IMMEDIATE … COMMIT (ROLLBACK on any error), also for the tables
        kept beside the catalog's."""
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
            with self.transaction() as c:
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                c.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0'), ('epoch', '0'), ('files', '0')")
        elif row[0] > SCHEMA_VERSION:
            raise IndexUnavailable(
                f"{self.db_path}: schema version {row[0]} is newer than this Audio Find ({SCHEMA_VERSION}); upgrade it"
            )
        # Future versions migrate in place here: `if row[0] < 2: ...; UPDATE schema_version`.

        self._add_columns(conn)

    def _add_columns(self, conn):
        present = {row[1] for row in conn.execute("PRAGMA table_info(tracks)")}
        for f in fields(Track):
            if f.name not in present:
                conn.execute(f"ALTER TABLE tracks ADD COLUMN {f.name} {_column_sql(f)}")

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
        values = dict(zip(TRACK_COLUMNS, row))
        for key in JSON_FIELDS:
            values[key] = json.loads(values[key])
        return Track(**values)

    # -- embedder identity
    def embedder_identity(self) -> dict | None:
        value = self._meta("embedder")
        return None if value is None else json.loads(value)


    def _require_identity(self) -> dict:
        identity = self.embedder_identity()
        if identity is None:
            raise IndexUnavailable(f"the catalog in {self.root} has no embedder yet: set_embedder_identity first")
        return identity


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
            for key in JSON_FIELDS:
                values[key] = json.dumps(values[key])
            params.append([values[c] for c in TRACK_COLUMNS] + [vec_row, win_row, len(windows), windows.tobytes()])
        with self.transaction() as conn:
            conn.executemany(
                f"INSERT INTO tracks ({', '.join(TRACK_COLUMNS)}, vec_row, win_row, win_count, windows) "
                f"VALUES ({', '.join('?' * (len(TRACK_COLUMNS) + 4))})",
                params,
            )
            self._bump(conn)

    def remove(self, track_id: str) -> bool:
        with self._write_lock(), self.transaction() as conn:
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
        where, args = text_match(query)
        sql = _SELECT + where + " ORDER BY seq DESC LIMIT ? OFFSET ?"
        return [self._row_to_track(r) for r in self._db().execute(sql, args + [int(limit), int(offset)])]

    def page(self, limit: int, query: str = "", cursor: str = "") -> tuple:
        where, args = text_match(query)
        if cursor:  # the seq of the last track of the page before: seq grows with every add
            if not cursor.isdigit():
                raise ValueError(f"not a cursor of this catalog: {cursor[:40]!r}")
            where, args = where + (" AND" if where else " WHERE") + " seq < ?", args + [int(cursor)]
        sql = f"SELECT seq, {', '.join(TRACK_COLUMNS)} FROM tracks{where} ORDER BY seq DESC LIMIT ?"
        rows = self._db().execute(sql, args + [int(limit)]).fetchall()
        following = str(rows[-1][0]) if len(rows) == limit else None
        return [self._row_to_track(row[1:]) for row in rows], following

    def count(self, query: str = "") -> int:
        where, args = text_match(query)
        return self._db().execute("SELECT COUNT(*) FROM tracks" + where, args).fetchone()[0]

    def update(self, track_id: str, fields: dict) -> None:
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))} (updatable: {', '.join(sorted(UPDATABLE))})")
        if not fields:
            if self.get(track_id) is None:
                raise KeyError(track_id)
            return
        values = {k: json.dumps(v) if k in JSON_FIELDS else v for k, v in fields.items()}
        with self._write_lock(), self.transaction() as conn:
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

    @staticmethod
    def _map(path: Path, dim: int):
        rows = path.stat().st_size // (dim * 4) if path.exists() else 0
        if rows == 0:
            return np.zeros((0, dim), dtype=np.float32)
        return np.memmap(path, dtype=np.float32, mode="r", shape=(rows, dim))

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
            with self.transaction() as c:
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
