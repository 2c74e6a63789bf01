"""The catalog map, kept with the catalog: the positions the map job computed (audiofind/jobs/catalog_map.py),
and those of tracks placed on it since, as they were ingested.

Two stores with one interface, chosen by the index backend (``for_index``):
  local  catalog_map.npz in the local index's DATA_DIR, rewritten whole (atomically, under catalog_map.lock)
  atlas  the ``map_points`` collection (a document per track) and the ``catalog_map`` document of ``meta``

A new track is placed (``place_track``, from ``after_ingest``) at the similarity-weighted mean position of its
nearest mapped tracks, which the index's own search finds (catalog_map.from_neighbours): no vectors are read
and nothing is recomputed. Recomputing in full is the map job's, from admin.
"""

import contextlib
import fcntl
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from audiofind import catalog_map
from audiofind.hookspecs import hookimpl
from audiofind.index.base import Filters

logger = logging.getLogger(__name__)

NEIGHBOURS = catalog_map.NEIGHBOURS


@dataclass
class CatalogMap:
    track_ids: list
    layout: np.ndarray  # (N, 2) float32 in the unit square: the neighbour-preserving layout
    coarse: np.ndarray  # (N, 2): the first two principal components
    method: str = "tsne"
    computed_at: float = 0.0
    seconds: float = 0.0  # how long the job took
    computed_tracks: int = 0  # tracks in the map when it was computed; the rest were placed since
    _rows: dict = field(default=None, repr=False, compare=False)

    def __len__(self):
        return len(self.track_ids)

    @property
    def placed(self) -> int:
        return len(self.track_ids) - self.computed_tracks

    def row(self, track_id) -> Optional[int]:
        if self._rows is None:
            self._rows = {t: i for i, t in enumerate(self.track_ids)}
        return self._rows.get(track_id)

    def info(self) -> dict:
        return {"method": self.method, "computed_at": self.computed_at, "seconds": round(self.seconds, 2),
                "computed_tracks": self.computed_tracks, "tracks": len(self), "placed": self.placed}

    def with_points(self, track_ids, layout, coarse) -> "CatalogMap":
        """This map with the given tracks' positions, added or (for tracks it has) replaced."""
        ids, new_layout, new_coarse = list(self.track_ids), self.layout.copy(), self.coarse.copy()
        extra = []
        for track_id, xy, cxy in zip(track_ids, layout, coarse):
            row = self.row(track_id)
            if row is None:
                extra.append((track_id, xy, cxy))
            else:
                new_layout[row], new_coarse[row] = xy, cxy
        if extra:
            ids += [e[0] for e in extra]
            new_layout = np.concatenate([new_layout, np.array([e[1] for e in extra], np.float32)])
            new_coarse = np.concatenate([new_coarse, np.array([e[2] for e in extra], np.float32)])
        return CatalogMap(ids, new_layout, new_coarse, self.method, self.computed_at, self.seconds,
                          self.computed_tracks)


class MapStore:
    def load(self) -> Optional[CatalogMap]:
        """The stored map, or None when none was computed yet."""
        raise NotImplementedError

    def save(self, new: CatalogMap) -> None:
        """Replace the stored map."""
        raise NotImplementedError

    def add_points(self, track_ids, layout, coarse) -> None:
        """Add (or move) tracks on the stored map; nothing when there is no map."""
        raise NotImplementedError


class LocalMapStore(MapStore):
    def __init__(self, root):
        self.path = root / "catalog_map.npz"
        self.lock_path = root / "catalog_map.lock"
        self._cached = (None, None)  # (file's mtime and size, map)

    def load(self):
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._cached[0] == stamp:
            return self._cached[1]
        with np.load(self.path, allow_pickle=False) as data:
            info = json.loads(str(data["info"]))
            loaded = CatalogMap(data["track_ids"].tolist(), data["layout"], data["coarse"], **info)
        self._cached = (stamp, loaded)
        return loaded

    @contextlib.contextmanager
    def _lock(self):
        with open(self.lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _write(self, new: CatalogMap):
        info = {k: getattr(new, k) for k in ("method", "computed_at", "seconds", "computed_tracks")}
        partial = self.path.with_suffix(".part.npz")
        np.savez(partial, track_ids=np.array(new.track_ids, dtype=str), layout=np.asarray(new.layout, np.float32),
                 coarse=np.asarray(new.coarse, np.float32), info=np.array(json.dumps(info)))
        os.replace(partial, self.path)

    def save(self, new):
        with self._lock():
            self._write(new)

    def add_points(self, track_ids, layout, coarse):
        with self._lock():
            current = self.load()
            if current is not None:
                self._write(current.with_points(track_ids, layout, coarse))


class AtlasMapStore(MapStore):
    INFO = "catalog_map"  # its _id in the meta collection

    def __init__(self, db):
        self.db = db

    def load(self):
        info = self.db["meta"].find_one({"_id": self.INFO})
        if info is None:
            return None
        docs = list(self.db["map_points"].find({}))
        info = {k: v for k, v in info.items() if k != "_id"}
        ids = [d["_id"] for d in docs]
        layout = np.array([d["layout"] for d in docs], np.float32).reshape(-1, 2)
        coarse = np.array([d["coarse"] for d in docs], np.float32).reshape(-1, 2)
        return CatalogMap(ids, layout, coarse, **info)

    def save(self, new):
        points = self.db["map_points"]
        points.delete_many({})
        docs = [{"_id": t, "layout": [float(v) for v in xy], "coarse": [float(v) for v in cxy]}
                for t, xy, cxy in zip(new.track_ids, new.layout, new.coarse)]
        for start in range(0, len(docs), 1000):
            points.insert_many(docs[start : start + 1000])
        info = {k: getattr(new, k) for k in ("method", "computed_at", "seconds", "computed_tracks")}
        self.db["meta"].replace_one({"_id": self.INFO}, {"_id": self.INFO, **info}, upsert=True)

    def add_points(self, track_ids, layout, coarse):
        if self.db["meta"].find_one({"_id": self.INFO}) is None:
            return
        for t, xy, cxy in zip(track_ids, layout, coarse):
            self.db["map_points"].replace_one(
                {"_id": t}, {"_id": t, "layout": [float(v) for v in xy], "coarse": [float(v) for v in cxy]},
                upsert=True)


def for_index(index) -> Optional[MapStore]:
    """The map store that keeps the map with ``index``'s catalog; None for a backend that has none."""
    if index.name == "local":
        return LocalMapStore(index.root)
    if index.name == "atlas":
        return AtlasMapStore(index.db)
    return None


def position(index, stored: CatalogMap, vector, exclude=()) -> Optional[tuple]:
    """(layout (2,), coarse (2,)) of a vector on ``stored``: from its NEIGHBOURS nearest mapped tracks, as the
    index's search finds them. None when none of them is on the map."""
    hits = index.search(np.asarray(vector, np.float32), NEIGHBOURS + len(exclude) + 5, Filters())
    rows, scores = [], []
    for hit in hits:
        row = stored.row(hit.track_id)
        if row is not None and hit.track_id not in exclude:
            rows.append(row)
            scores.append(hit.score)
    rows, scores = rows[:NEIGHBOURS], np.array([scores[:NEIGHBOURS]], np.float32)
    if not rows:
        return None
    layout = catalog_map.from_neighbours(scores, stored.layout[rows][None])[0]
    coarse = catalog_map.from_neighbours(scores, stored.coarse[rows][None])[0]
    return layout, coarse


def place_track(store: MapStore, index, track_id: str, move: bool = True) -> bool:
    """Place a catalog track on the stored map; one already on it is moved, or with ``move=False`` left where it
    is. False when nothing was placed (no map, no mapped neighbour, or left)."""
    stored = store.load()
    if stored is None or (not move and stored.row(track_id) is not None):
        return False
    found = position(index, stored, index.track_vector(track_id), exclude=(track_id,))
    if found is None:
        return False
    store.add_points([track_id], [found[0]], [found[1]])
    return True


@hookimpl
def after_ingest(track, catalog):
    """Every new track goes onto the map, if there is one; a failure here never fails the ingest. A track re-added
    by a reindex keeps its place (placing it among the few tracks re-added before it would scramble the map;
    a reindex with another embedder needs the map recomputed anyway)."""
    started = time.perf_counter()
    try:
        store = for_index(catalog.index)
        if store is not None and place_track(store, catalog.index, track.track_id, move=False):
            logger.info("placed %s on the catalog map in %.3f s", track.track_id, time.perf_counter() - started)
    except Exception:
        logger.exception("could not place %s on the catalog map", track.track_id)
