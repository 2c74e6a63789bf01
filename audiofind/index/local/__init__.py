"""The embedded index: SQLite + vector files (store), an in-memory snapshot of what searches filter on
(snapshot), exact search (exact) and HNSW search above ANN_THRESHOLD tracks (ann)."""

import json
import logging
import threading
import time

import numpy as np

from audiofind.config import data_dir
from audiofind.hookspecs import hookimpl
from audiofind.index.base import DuplicateAudio, EmbedderMismatch, Filters, Hit, Index, Track
from audiofind.index.local.ann import AnnSearch
from audiofind.index.local.exact import exact_segments, exact_tracks, top
from audiofind.index.local import snapshot
from audiofind.index.local.snapshot import Snapshot
from audiofind.index.local.store import SCHEMA_VERSION, Store  # noqa: F401 (SCHEMA_VERSION: public)

logger = logging.getLogger(__name__)


class LocalIndex(AnnSearch, Store, Index):
    name = "local"

    def __init__(self, config):
        Index.__init__(self, config)
        self.ann_threshold = int(config.get("ANN_THRESHOLD", 20000) or 0)
        self._refresh_lock = threading.Lock()
        self._snapshot = Snapshot()
        self._ann_views = {}
        Store.__init__(self, data_dir(config))

    def set_embedder_identity(self, identity: dict) -> None:
        for key in ("dim", "window_dim"):
            if not isinstance(identity.get(key), int) or identity[key] <= 0:
                raise ValueError(f"embedder identity needs a positive integer {key!r}: {identity!r}")
        with self._write_lock(), self.transaction() as conn:
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


    # -- the reader's cache
    def _refresh(self) -> Snapshot:
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
            base = snap if snap.epoch == epoch else Snapshot()
            # One read transaction so the rows and the counters agree.
            conn.execute("BEGIN")
            try:
                counters = dict(conn.execute("SELECT key, value FROM meta"))
                rows = conn.execute(snapshot.SELECT, (base.last_seq,)).fetchall()
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

    def all_vectors(self) -> tuple:
        snap = self._refresh()
        if not len(snap):
            return [], np.zeros((0, (self.embedder_identity() or {}).get("dim", 0)), np.float32)
        return list(snap.track_ids), np.array(snap.maps[0][snap.vec_row], dtype=np.float32)

    def track_vectors(self, track_ids: list) -> np.ndarray:
        snap = self._refresh()
        if not track_ids:
            return np.zeros((0, (self.embedder_identity() or {}).get("dim", 0)), np.float32)
        rows = snap.vec_row[[snap.position[track_id] for track_id in track_ids]]
        return np.array(snap.maps[0][rows], dtype=np.float32)

    def vector_sample(self, size: int) -> np.ndarray:
        snap = self._refresh()
        rows = snap.vec_row
        if len(rows) == 0:
            return np.zeros((0, (self.embedder_identity() or {}).get("dim", 0)), np.float32)
        if len(rows) > size:
            rows = np.sort(np.random.default_rng().choice(rows, size, replace=False))
        return np.array(snap.maps[0][rows], dtype=np.float32)

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
        positions, scores = exact_tracks(snap, q, mask)
        order = top(scores, limit)
        return [Hit(snap.track_ids[positions[i]], float(scores[i])) for i in order]


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
                return exact_segments(snap, queries, positions, limit, self._window_times)
        return exact_segments(snap, queries, np.flatnonzero(mask), limit, self._window_times)


    def close(self) -> None:
        Store.close(self)
        self._snapshot = Snapshot()


@hookimpl
def register_indexes():
    return [LocalIndex]
