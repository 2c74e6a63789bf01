"""The catalog map: 2-D positions of the track vectors where tracks that sound alike sit together.

- ``coarse_view``: the first two principal components (seconds at 100,000 tracks; a first picture);
- ``fit_layout``: a neighbour-preserving layout of all tracks (t-SNE from openTSNE by default, or UMAP) on
  their first 50 principal components, scaled into the unit square;
- ``place``: new tracks placed on an existing map without recomputing it, at the similarity-weighted mean
  position of their nearest tracks in the full vector space;
- ``neighbour_preservation``: how much the map means: the fraction of each track's k nearest neighbours on
  the map that are among its k nearest in the full space;
- ``density_grid`` and ``select_points``: what a view of a large map draws: counts per cell, and a stable
  subset of the points in a viewport that grows as one zooms in.

Positions are float32 (N, 2) in [0, 1] x [0, 1], with y growing downwards as on a page. Which method and
why (t-SNE kept more neighbours than UMAP on synthetic vectors, as many on real music):
BENCHMARKS.md, "Catalog map" (bench/bench_map.py).
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

METHODS = ("umap", "tsne", "pca")
PCA_DIMS = 50
NEIGHBOURS = 10
MARGIN = 0.02  # of the unit square, kept free around the points


@dataclass
class Projection:
    """A linear projection (PCA): ``(vectors - mean) @ components.T``."""

    mean: np.ndarray  # (D,) float32
    components: np.ndarray  # (k, D) float32

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        return (np.asarray(vectors, np.float32) - self.mean) @ self.components.T


def principal_components(vectors: np.ndarray, dims: int = PCA_DIMS, seed: int = 0) -> Projection:
    """The top ``dims`` principal axes (randomised SVD: seconds at 100,000 x 2048)."""
    from sklearn.utils.extmath import randomized_svd

    vectors = np.asarray(vectors, np.float32)
    dims = max(1, min(dims, vectors.shape[0] - 1, vectors.shape[1]))
    mean = vectors.mean(axis=0)
    _, _, components = randomized_svd(vectors - mean, dims, n_iter=4, random_state=seed)
    return Projection(mean, components.astype(np.float32))


def unit_square(coords: np.ndarray) -> np.ndarray:
    """Coordinates scaled, aspect kept, into [MARGIN, 1 - MARGIN]^2, centred; y flipped to grow downwards."""
    coords = np.asarray(coords, np.float64)
    if len(coords) == 0:
        return np.zeros((0, 2), np.float32)
    low, high = coords.min(axis=0), coords.max(axis=0)
    span = max(float((high - low).max()), 1e-12)
    scaled = (coords - (low + high) / 2) / span * (1 - 2 * MARGIN) + 0.5
    scaled[:, 1] = 1 - scaled[:, 1]
    return scaled.astype(np.float32)


def coarse_view(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """The first two principal components, in the unit square."""
    if len(vectors) < 3:
        return np.full((len(vectors), 2), 0.5, np.float32)
    return unit_square(principal_components(vectors, 2, seed)(vectors))


def fit_layout(vectors: np.ndarray, method: str = "tsne", seed: int = 0, neighbours: int = 15,
               threads: Optional[int] = None) -> np.ndarray:
    """A 2-D layout of all tracks, (N, 2) float32 in the unit square. ``method``: 'umap', 'tsne' or 'pca';
    the same vectors and seed give the same map. ``threads``: for t-SNE (default 1)."""
    vectors = np.asarray(vectors, np.float32)
    n = len(vectors)
    if method not in METHODS:
        raise ValueError(f"unknown map method {method!r}: one of {', '.join(METHODS)}")
    if method == "pca" or n < 2 * neighbours:  # too few tracks for a neighbour graph: the linear view
        return coarse_view(vectors, seed)
    reduced = principal_components(vectors, PCA_DIMS, seed)(vectors)
    if method == "umap":
        import umap

        # A seed makes the map the same on every recompute, and umap-learn single-threaded (it says so).
        model = umap.UMAP(n_neighbors=neighbours, min_dist=0.1, metric="euclidean", random_state=seed, n_jobs=1,
                          low_memory=True, verbose=False)
        return unit_square(model.fit_transform(reduced))
    from openTSNE import TSNE

    model = TSNE(perplexity=min(30.0, (n - 1) / 3), initialization="pca", random_state=seed,
                 n_jobs=threads or 1, verbose=False)
    return unit_square(np.asarray(model.fit(reduced)))


def nearest(queries: np.ndarray, vectors: np.ndarray, k: int, exclude_self: bool = False,
            batch: int = 2048) -> tuple:
    """(indices (M, k), similarities (M, k)) of each query's k most similar vectors (dot product), in batches
    so memory stays at batch x N. ``exclude_self``: the queries are ``vectors`` itself; skip each one's own row."""
    queries, vectors = np.asarray(queries, np.float32), np.asarray(vectors, np.float32)
    k = min(k, len(vectors) - (1 if exclude_self else 0))
    indices = np.zeros((len(queries), k), np.int64)
    similarities = np.zeros((len(queries), k), np.float32)
    for start in range(0, len(queries), batch):
        scores = queries[start : start + batch] @ vectors.T
        if exclude_self:
            rows = np.arange(len(scores))
            scores[rows, start + rows] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1)
        indices[start : start + batch] = np.take_along_axis(top, order, axis=1)
        similarities[start : start + batch] = np.take_along_axis(top_scores, order, axis=1)
    return indices, similarities


def _map_nearest(points: np.ndarray, coords: np.ndarray, k: int, exclude: Optional[np.ndarray]) -> np.ndarray:
    from scipy.spatial import cKDTree

    tree = cKDTree(np.asarray(coords, np.float64))
    _, found = tree.query(points, k=k + (1 if exclude is not None else 0))
    if exclude is None:
        return found
    # Drop each point's own row (usually first; ties at distance 0 may put it elsewhere).
    out = np.zeros((len(points), k), np.int64)
    for row, (own, candidates) in enumerate(zip(exclude, found)):
        out[row] = [c for c in candidates if c != own][:k]
    return out


def neighbour_preservation(vectors: np.ndarray, coords: np.ndarray, k: int = NEIGHBOURS,
                           sample: Optional[np.ndarray] = None) -> float:
    """Mean over tracks (all, or the indices in ``sample``) of |k nearest on the map ∩ k nearest in the full
    space| / k. 1: the map keeps every neighbourhood; k / N: no better than chance."""
    vectors, coords = np.asarray(vectors, np.float32), np.asarray(coords, np.float32)
    rows = np.arange(len(vectors)) if sample is None else np.asarray(sample)
    k = min(k, len(vectors) - 1)
    full, _ = nearest(vectors[rows], vectors, k + 1)
    on_map = _map_nearest(coords[rows], coords, k, exclude=rows)
    shared = [len((set(f) - {own}) & set(m)) if own in f else len(set(f[:k]) & set(m))
              for own, f, m in zip(rows, full, on_map)]
    return float(np.mean(shared) / k)


def place(new_vectors: np.ndarray, vectors: np.ndarray, coords: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Map positions (M, 2) for new tracks on an existing map: the mean position of each one's k most similar
    tracks, weighted by similarity above the k-th (the nearest count most; a track's copy lands on it)."""
    coords = np.asarray(coords, np.float32)
    if len(vectors) == 0:
        return np.full((len(new_vectors), 2), 0.5, np.float32)
    indices, similarities = nearest(new_vectors, vectors, k)
    return from_neighbours(similarities, coords[indices])


def from_neighbours(similarities: np.ndarray, neighbour_coords: np.ndarray) -> np.ndarray:
    """``place``'s positions (M, 2) from each new track's neighbours: their similarities (M, k), best first,
    and map positions (M, k, 2). A search index that found the neighbours gives them without all the vectors."""
    similarities = np.asarray(similarities, np.float32)
    weights = similarities - similarities[:, -1:] + 1e-3
    weights = np.where(similarities[:, :1] >= 0.9999, (similarities >= 0.9999).astype(np.float32), weights)
    weights = weights / weights.sum(axis=1, keepdims=True)
    return np.einsum("mk,mkd->md", weights, np.asarray(neighbour_coords, np.float32)).astype(np.float32)


def in_viewport(coords: np.ndarray, viewport) -> np.ndarray:
    """Indices of the points inside ``viewport`` = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = viewport
    x, y = coords[:, 0], coords[:, 1]
    return np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))


def select_points(coords: np.ndarray, viewport, max_points: int, seed: int = 0) -> np.ndarray:
    """At most ``max_points`` indices of points inside ``viewport``: the same points at every zoom (each track
    has a fixed random rank; the lowest ranks are shown), so zooming in only adds points."""
    inside = in_viewport(coords, viewport)
    if len(inside) <= max_points:
        return inside
    rank = np.random.default_rng(seed).permutation(len(coords))
    return np.sort(inside[np.argpartition(rank[inside], max_points - 1)[:max_points]])


def density_grid(coords: np.ndarray, viewport, bins=(64, 48)) -> np.ndarray:
    """Track counts per cell of a ``bins`` = (columns, rows) grid over ``viewport``; (rows, columns) int32."""
    x0, y0, x1, y1 = viewport
    columns, rows = bins
    counts, _, _ = np.histogram2d(coords[:, 1], coords[:, 0], bins=(rows, columns), range=((y0, y1), (x0, x1)))
    return counts.astype(np.int32)
