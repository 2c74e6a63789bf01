"""Refining a search: "more like these, less like that" (relevance feedback on the query's vectors).

Rocchio's method, in both spaces the catalog searches:

- track vectors: ``q' = q + like_weight * mean(liked) - unlike_weight * mean(unliked)``, re-normalised (the
  dot product is linear, so this ranks by the reference's similarity plus the weighted mean of the liked
  tracks' similarity minus that of the unliked);
- window vectors (segment search, which scores a catalog track by the mean over the query's windows of their
  best match in it): the liked tracks' windows join the reference's, each window counting alike, so a track
  scores by how well it matches passages of all of them; then every window is moved away from the weighted
  centroid of the unliked tracks' windows. (Moving the reference's windows towards the liked tracks' centroid
  instead did not raise album precision at all: BENCHMARKS.md.)

A vector shift only lowers the unliked track's neighbours a little; "less like that" should remove them. So the
unliked tracks and their ``Weights.neighbours`` nearest catalog tracks (by track vector) are filtered out of the
search. Weights measured in bench/bench_refine.py (BENCHMARKS.md, "Refining a search").
"""

from dataclasses import dataclass

import numpy as np

from audiofind.index.base import Filters


@dataclass(frozen=True)
class Weights:
    like: float = 1.0  # of the liked tracks' mean, beside the reference's 1
    unlike: float = 0.5  # of the unliked tracks' mean, subtracted
    neighbours: int = 3  # nearest tracks of each unliked track left out with it


DEFAULT_WEIGHTS = Weights()


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def _centroids(index, track_ids) -> tuple:
    """(mean track vector, mean window vector) of the tracks; KeyError for one not in the catalog."""
    track_vectors, window_centroids = [], []
    for track_id in track_ids:
        track_vectors.append(index.track_vector(track_id))
        _, window_vectors = index.segments(track_id)
        if len(window_vectors):
            window_centroids.append(_unit(window_vectors.mean(axis=0)))
    window = np.mean(window_centroids, axis=0) if window_centroids else 0.0
    return np.mean(track_vectors, axis=0), window


def refine_query(index, vector, window_vectors, like=(), unlike=(), weights=DEFAULT_WEIGHTS) -> tuple:
    """(vector, window_vectors) of the reference moved towards the ``like`` tracks and away from the ``unlike``
    ones (track ids), L2-normalised. KeyError names a track id that is not in the catalog."""
    vector = np.asarray(vector, np.float32)
    window_vectors = np.asarray(window_vectors, np.float32)
    if like:
        vector = vector + weights.like * np.mean([index.track_vector(t) for t in like], axis=0)
        window_vectors = np.concatenate([window_vectors, *(index.segments(t)[1] for t in like)])
    if unlike:
        track_mean, window_mean = _centroids(index, unlike)
        vector = vector - weights.unlike * track_mean
        window_vectors = window_vectors - weights.unlike * window_mean
    return _unit(vector), _unit(window_vectors) if len(window_vectors) else window_vectors


def unliked_neighbours(index, nearest, unlike, *, keep=(), count=DEFAULT_WEIGHTS.neighbours) -> list:
    """The ``unlike`` track ids and, for each, its ``count`` nearest catalog tracks by track vector (``nearest(
    vector, count, filters)``: the catalog's track ranking), except the ids in ``keep`` (the reference and the
    liked tracks): what a refined search leaves out."""
    keep = set(keep)
    dropped = list(dict.fromkeys(unlike))
    for track_id in unlike if count > 0 else ():
        others = Filters(exclude_track_ids=[track_id, *keep])
        dropped.extend(hit.track_id for hit in nearest(index.track_vector(track_id), count, others))
    return [track_id for track_id in dict.fromkeys(dropped) if track_id not in keep]
