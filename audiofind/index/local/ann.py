"""Approximate search (above ANN_THRESHOLD tracks): HNSW indexes (usearch) nominate candidates, scored exactly.

One HNSW index (usearch, int8-quantised inner product) over the track vectors and one over the window
vectors, keyed by row number, saved as <kind>.<files>.<n>.usearch and memory-mapped by readers.
Rows appended after the last save (the tail) are searched exactly; the writer folds the tail in (and
drops removed rows) once it exceeds _ANN_BATCH rows or 5 %. ANN candidates are re-scored exactly
against the float32 vectors, so scores are exact dot products; only the candidate set is approximate.
"""

import json
import os

import numpy as np

from audiofind.index.base import Hit
from audiofind.index.local.exact import top
from audiofind.index.local.snapshot import span_rows

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


class AnnSearch:
    """The HNSW side of LocalIndex (a mixin over its Store): building, extending and querying the indexes."""

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
        return [Hit(snap.track_ids[positions[i]], float(scores[i])) for i in top(scores, limit)]

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
        best = seen[top(approx[seen], wanted)]
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
            live = span_rows(spans[:, 0], spans[:, 1])[0]
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
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"ann_{kind}", json.dumps(info)))
            self._bump(c)
        if old_path is not None and old_path.name != name:
            old_path.unlink(missing_ok=True)  # readers that mapped it keep it until they move on
        return info
