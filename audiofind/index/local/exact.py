"""Exact search over the snapshot: every candidate's vectors scored against the query (the reference)."""

import numpy as np

from audiofind.index.base import Hit
from audiofind.index.local.snapshot import span_rows

# Searches over fewer rows than this gather the rows; above it they scan the whole file (sequential is faster).
_GATHER_FRACTION = 0.25
_CHUNK_ROWS = 16384


def top(scores: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the ``limit`` largest scores, best first (ties by position, so results are stable)."""
    if limit <= 0 or len(scores) == 0:
        return np.empty(0, dtype=np.int64)
    if limit < len(scores):
        part = np.argpartition(-scores, limit - 1)[:limit]
    else:
        part = np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]



def exact_tracks(snap, q, mask):
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


def exact_segments(snap, queries, positions, limit, window_times):
    """Hits of the tracks at ``positions`` for a segment query; ``window_times(track_id, i)``: (start, end)."""
    windows = snap.maps[1]
    if len(positions) == 0:
        return []
    starts, counts = snap.win_row[positions], snap.win_count[positions]
    total = int(counts.sum())
    if total < _GATHER_FRACTION * len(windows):
        # Gather the candidates' windows into one block; each track's rows are then contiguous.
        rows, offsets = span_rows(starts, counts)
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
    for i in top(scores, limit):
        block = sims[seg_starts[i] : seg_starts[i] + counts[i]]
        window = int(np.argmax(block.max(axis=1)))
        track_id = snap.track_ids[positions[i]]
        start, end = window_times(track_id, window)
        hits.append(Hit(track_id, float(scores[i]), start, end))
    return hits
