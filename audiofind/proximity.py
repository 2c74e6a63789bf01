"""Mutual proximity: ranking whole tracks by how unusually close two tracks are to each other.

In a catalog of music vectors some tracks ("hubs") are close to almost everything: by raw similarity they top
the "more like this" list of tracks they have little to do with, while other tracks are nobody's neighbour.
Mutual proximity (Schnitzer, Flexer, Schedl & Widmer, "Local and global scaling reduce hubs in space", JMLR
2012) asks instead how likely a random catalog track is *less* similar than ``s`` both to the reference and to
the candidate, where ``s`` is their similarity: ``P(S_q < s) * P(S_c < s)``. A hub is similar to everything, so
a similarity that is high for the reference is ordinary for the hub, and the pair scores low.

Each track's similarities to the catalog are modelled as a normal distribution (the scalable form of the
paper): their mean and standard deviation over a random sample of catalog tracks, so the cost per search is the
reference and its candidates against the sample, whatever the catalog's size. Measured on real music
(bench/bench_quality.py, BENCHMARKS.md "Mutual proximity"), album precision@5 of "more like this" rose with dsp
from 0.712 to 0.720 on the development albums, from 0.699 to 0.745 on held-out albums and from 0.699 to 0.724
on the quality bench's soundtracks; with the trained aisfx CNN from 0.681 to 0.706.
"""

import threading
import time
from dataclasses import replace

import numpy as np
import scipy.special

# Catalog tracks sampled to model each track's similarities to the catalog.
SAMPLE_SIZE = 1000
# A sample of a larger catalog is drawn again after this long; a smaller catalog's (all its tracks) as soon as
# its count changes (counting a catalog of fewer than SAMPLE_SIZE tracks is cheap).
RESAMPLE_SECONDS = 600.0
# Similarities at least this high are the track itself (or an identical copy) and left out of its model.
SELF_SIMILARITY = 1 - 1e-5


def mutual_proximity(sample, query, candidates, similarities) -> np.ndarray:
    """Mutual proximity (0-1) of the query vector with each candidate vector, given their similarities, each
    track's similarities to the catalog modelled from the ``sample`` of catalog track vectors."""
    query_mean, query_spread = _model(sample, np.asarray(query)[None])
    mean, spread = _model(sample, candidates)
    s = np.asarray(similarities, np.float64)
    return scipy.special.ndtr((s - query_mean) / query_spread) * scipy.special.ndtr((s - mean) / spread)


def _model(sample, vectors) -> tuple:
    """(mean, standard deviation) of each vector's similarities to the sample, itself left out."""
    similarities = np.asarray(vectors, np.float32) @ sample.T
    others = similarities < SELF_SIMILARITY
    count = np.maximum(others.sum(axis=1), 1)
    mean = np.where(others, similarities, 0.0).sum(axis=1, dtype=np.float64) / count
    variance = np.where(others, (similarities - mean[:, None]) ** 2, 0.0).sum(axis=1, dtype=np.float64) / count
    return mean, np.maximum(np.sqrt(variance), 1e-6)


class Proximity:
    """Mutual proximity ranking for one catalog's index, with the sample drawn from it kept between searches."""

    def __init__(self, index, clock=time.monotonic):
        self.index = index
        self.clock = clock
        self._lock = threading.Lock()
        self._sample = None  # (vectors, when drawn)

    def sample(self) -> np.ndarray:
        """The catalog sample: every track of a catalog of fewer than SAMPLE_SIZE, else SAMPLE_SIZE at random."""
        with self._lock:
            if self._sample is not None:
                vectors, drawn = self._sample
                if len(vectors) < SAMPLE_SIZE:
                    fresh = self.index.count() == len(vectors)
                else:
                    fresh = self.clock() - drawn < RESAMPLE_SECONDS
                if fresh:
                    return vectors
            vectors = np.asarray(self.index.vector_sample(SAMPLE_SIZE), np.float32)
            self._sample = (vectors, self.clock())
            return vectors

    def rerank(self, query, hits: list) -> list:
        """Track-vector hits ranked by mutual proximity with the query (their score becomes it), best first.
        With fewer than two sampled tracks there is nothing to model: the hits are left as they are."""
        sample = self.sample() if hits else None
        if sample is None or len(sample) < 2:
            return hits
        try:
            candidates = self.index.track_vectors([hit.track_id for hit in hits])
        except KeyError:  # a hit removed since the search: rank again on the next one
            return hits
        scores = mutual_proximity(sample, query, candidates, [hit.score for hit in hits])
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], -hits[i].score))
        return [replace(hits[i], score=float(scores[i])) for i in order]
