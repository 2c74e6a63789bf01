"""What every index backend stores and answers. The catalog talks to this interface only."""

from dataclasses import dataclass, field, fields
from typing import Optional

import numpy as np

from audiofind.index.filters import Filters  # noqa: F401 (its home is the filter table)


class IndexUnavailable(RuntimeError):
    """The index cannot answer (not ready, wrong dimensions, unreachable); the message says why."""


class EmbedderMismatch(IndexUnavailable):
    """Vectors from another embedder would be mixed into the catalog."""


class DuplicateAudio(ValueError):
    """The same audio (content hash) is already in the catalog as ``existing`` (a Track)."""

    def __init__(self, existing):
        super().__init__(f"the same audio is already in the catalog as track {existing.track_id}")
        self.existing = existing


@dataclass
class Track:
    track_id: str
    file: str  # the original file name
    content_hash: str  # sha256 of the file bytes
    duration: float
    embedder: str  # "name:version"
    storage_key: str = ""
    title: str = ""
    artist: str = ""
    album: str = ""
    tags: list = field(default_factory=list)  # free tags from metadata and the model's top labels
    labels: list = field(default_factory=list)  # [[label, score]] from the embedder, best first
    bpm: Optional[float] = None
    group_id: str = ""  # tracks that are versions of each other share it; a track alone has its own id
    envelope: list = field(default_factory=list)  # loudness over time, 0..1, a few hundred points
    created_at: float = 0.0
    # Musical facts (audiofind/musicfacts.py): empty / None for tracks ingested before them
    key: str = ""  # "A minor"
    camelot: str = ""  # its Camelot code, "8A"
    vocals: str = ""  # "vocal" | "instrumental"
    energy: Optional[float] = None  # 0..1

    def to_dict(self) -> dict:
        # Shallow on purpose: asdict() deep-copies the envelope, which dominates result rendering.
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Hit:
    track_id: str
    score: float
    match_start: Optional[float] = None  # where in the catalog track the best window starts, seconds
    match_end: Optional[float] = None


class Index:
    """Base class of index backends. ``config`` is the app config mapping."""

    name: str = ""

    def __init__(self, config):
        self.config = config

    # -- the embedder that built the catalog
    def embedder_identity(self) -> Optional[dict]:
        raise NotImplementedError

    def set_embedder_identity(self, identity: dict) -> None:
        raise NotImplementedError

    # -- tracks
    def add(self, track: Track, vector: np.ndarray, windows: np.ndarray, window_vectors: np.ndarray) -> None:
        """Store a track with its vectors, all or nothing."""
        raise NotImplementedError

    def remove(self, track_id: str) -> bool:
        raise NotImplementedError

    def get(self, track_id: str) -> Optional[Track]:
        raise NotImplementedError

    def get_many(self, track_ids: list, envelope: bool = True) -> dict:
        """{track_id: Track} for the ids that exist; with ``envelope=False`` their loudness envelopes are
        left empty, which is cheaper when only the metadata is needed."""
        raise NotImplementedError

    def find_by_hash(self, content_hash: str) -> Optional[Track]:
        raise NotImplementedError

    def list(self, offset: int = 0, limit: int = 50, query: str = "") -> list:
        """Tracks, newest first; ``query`` matches file, title, artist or album (case-insensitive substring)."""
        raise NotImplementedError

    def page(self, limit: int, query: str = "", cursor: str = "") -> tuple:
        """(tracks, next cursor or None): like ``list``, newest first, but after the place ``cursor`` (from an
        earlier page) names rather than after an offset, so a deep page costs what the first one does.
        ValueError for a cursor this index did not make."""
        raise NotImplementedError

    def count(self, query: str = "") -> int:
        """How many tracks ``list`` would page through for ``query`` (all of them for an empty one)."""
        raise NotImplementedError

    def update(self, track_id: str, fields: dict) -> None:
        """Change metadata fields (title, artist, album, tags, group_id)."""
        raise NotImplementedError

    def find_by_file(self, file: str) -> list:
        raise NotImplementedError

    # -- vectors
    def track_vector(self, track_id: str) -> np.ndarray:
        raise NotImplementedError

    def all_vectors(self) -> tuple:
        """(track ids, track vectors (N, dim) float32) of every track, for the catalog map. This default reads
        them track by track; backends override it with one read."""
        ids = []
        while len(ids) < self.count():
            page = self.list(len(ids), 500)
            if not page:
                break
            ids.extend(track.track_id for track in page)
        dim = (self.embedder_identity() or {}).get("dim", 0)
        vectors = np.stack([self.track_vector(i) for i in ids]) if ids else np.zeros((0, dim), np.float32)
        return ids, vectors

    def track_vectors(self, track_ids: list) -> np.ndarray:
        """The track vectors of these ids, in their order (KeyError for one not in the catalog). This default
        reads them one by one; backends override it with one read."""
        dim = (self.embedder_identity() or {}).get("dim", 0)
        return np.stack([self.track_vector(i) for i in track_ids]) if track_ids else np.zeros((0, dim), np.float32)

    def vector_sample(self, size: int) -> np.ndarray:
        """Up to ``size`` track vectors drawn at random from the whole catalog (every one when it holds no
        more), for modelling how tracks relate to the catalog (audiofind/proximity.py). This default reads
        every vector; backends override it with a sampling read."""
        _, vectors = self.all_vectors()
        if len(vectors) <= size:
            return vectors
        return vectors[np.random.default_rng().choice(len(vectors), size, replace=False)]

    def segments(self, track_id: str) -> tuple:
        """(windows (n, 2), window_vectors (n, window_dim)) of one track."""
        raise NotImplementedError

    def search(self, vector: np.ndarray, limit: int, filters: Filters) -> list:
        """Track-level: the ``limit`` best tracks by dot product with ``vector``, as Hits (no match_start)."""
        raise NotImplementedError

    def search_segments(self, window_vectors: np.ndarray, limit: int, filters: Filters) -> list:
        """Segment-level: for each catalog track, the mean over query windows of the best window match.

        Returns the ``limit`` best tracks as Hits, with match_start/match_end of the catalog window
        that matched the query best."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise IndexUnavailable when the index cannot answer (readiness probe)."""
        self.count()

    def close(self) -> None:
        pass
