"""What a search needs about the live tracks, as arrays: row numbers into the vector files and one column
per filter field (index/filters.py), so filters become numpy masks."""

import json

import numpy as np

from audiofind.index import filters

# Every filter field's attribute once ("track_id" first: the hits name it), and how the snapshot holds it.
COLUMNS = tuple(dict.fromkeys(["track_id", *(f.name for f in filters.FILTER_FIELDS)]))
KINDS = {"track_id": "text", **{f.name: f.column for f in filters.FILTER_FIELDS}}
SELECT = (
    "SELECT seq, vec_row, win_row, win_count, " + ", ".join(COLUMNS) + " FROM tracks WHERE seq > ? ORDER BY seq"
)


def _column(values, kind):
    if kind == "set":
        return [frozenset(json.loads(v)) for v in values]
    if kind == "number":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.array(values, dtype=object)


def span_rows(starts: np.ndarray, counts: np.ndarray) -> tuple:
    """Every row of the spans (start, count), in order, and where each span begins in that list."""
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return np.repeat(np.asarray(starts, dtype=np.int64) - offsets, counts) + np.arange(int(counts.sum())), offsets


class Snapshot:
    """Rebuilt or extended (``extended``) by LocalIndex when the catalog's generation changes."""

    def __init__(self):
        self.generation = -1
        self.epoch = -1
        self.last_seq = 0
        self.columns = {name: _column((), KINDS[name]) for name in COLUMNS}
        self.vec_row = np.empty(0, dtype=np.int64)
        self.win_row = np.empty(0, dtype=np.int64)
        self.win_count = np.empty(0, dtype=np.int64)
        self.position = {}  # track_id -> position in these arrays
        self.maps = (None, None)  # memmaps of the track and window vector files
        self.ann = {}  # meta 'ann_tracks' / 'ann_windows': which HNSW file covers which rows
        self._tag_index = {}  # set column -> {element: positions}, built when a filter needs it
        self._row_positions = {}

    def __len__(self):
        return len(self.track_ids)

    @property
    def track_ids(self):
        return self.columns["track_id"]

    def extended(self, rows):
        """A new snapshot with ``rows`` (of ``SELECT``) appended."""
        new = Snapshot()
        cols = list(zip(*rows)) if rows else [()] * (4 + len(COLUMNS))
        new.vec_row = np.concatenate([self.vec_row, np.array(cols[1], dtype=np.int64)])
        new.win_row = np.concatenate([self.win_row, np.array(cols[2], dtype=np.int64)])
        new.win_count = np.concatenate([self.win_count, np.array(cols[3], dtype=np.int64)])
        for name, values in zip(COLUMNS, cols[4:]):
            old, added = self.columns[name], _column(values, KINDS[name])
            new.columns[name] = old + added if KINDS[name] == "set" else np.concatenate([old, added])
        new.position = dict(self.position)
        for i, track_id in enumerate(new.track_ids[len(self) :], start=len(self)):
            new.position[track_id] = i
        new.last_seq = max(self.last_seq, max(cols[0], default=0))
        return new

    def equals(self, name: str, value) -> np.ndarray:
        """A new boolean array: True where the track's ``name`` is ``value`` (for a set column: holds it)."""
        if KINDS[name] == "text" and name != "track_id":
            return self.columns[name] == value
        found = np.zeros(len(self), dtype=bool)
        if name == "track_id":
            if value in self.position:
                found[self.position[value]] = True
            return found
        if name not in self._tag_index:
            index = {}
            for i, elements in enumerate(self.columns[name]):
                for element in elements:
                    index.setdefault(element, []).append(i)
            self._tag_index[name] = {v: np.array(rows, dtype=np.int64) for v, rows in index.items()}
        found[self._tag_index[name].get(value, np.empty(0, dtype=np.int64))] = True
        return found

    def row_positions(self, kind: str) -> np.ndarray:
        """For each row of the track ("tracks") or window ("windows") vector file: its track's position, or -1."""
        if kind not in self._row_positions:
            vectors = self.maps[0 if kind == "tracks" else 1]
            rows = np.full(len(vectors), -1, dtype=np.int64)
            if kind == "tracks":
                rows[self.vec_row] = np.arange(len(self))
            else:
                rows[span_rows(self.win_row, self.win_count)[0]] = np.repeat(np.arange(len(self)), self.win_count)
            self._row_positions[kind] = rows
        return self._row_positions[kind]

    def mask(self, filters_) -> np.ndarray | None:
        """Boolean mask of the tracks that pass ``filters_`` (Filters.matches semantics); None when all pass."""
        return filters.mask(filters_, self)
