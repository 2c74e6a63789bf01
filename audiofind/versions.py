"""Is one track a version of another (a re-encode, a cut-down, a loudness/EQ change, an alternate mix)?

A version is a *time-aligned* match: the shorter track's windows, in order, match the longer one's at one
time offset. Two tests, on the window vectors the catalog already stores, with no number tuned to an embedder:

1. **Alignment.** Each window of the shorter track finds its best match in the longer one; at least half of
   them must agree on one offset (within half a hop). Different pieces that merely sound alike match at
   scattered places (or all at one loud passage, which is not one offset).
2. **Closer than the music itself moves.** At that offset, the mean similarity of the aligned windows must
   exceed the tracks' own *self-similarity one hop apart*: how alike each track is to itself 5 s later (the
   larger of the two). A version's aligned window is at most half a hop away from the original's, plus the
   degradation; a different piece, however alike in style, is further away than the piece moves in 5 s.
   This reference is measured per track, so it follows the embedder's geometry (a trained network puts all
   music close together and its windows close to their neighbours alike) and the music (a static drone
   needs a closer match than a busy cue).

A track shorter than two windows has no self-similarity of its own: the reference is then the median
self-similarity of the catalog tracks examined with it; with none that have two windows, nothing is grouped.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

# Share of the shorter track's windows whose best match must lie at the common offset.
MIN_AGREEMENT = 0.5


@dataclass
class Alignment:
    offset: float  # seconds: where the shorter track's start lies in the longer one
    agreement: float  # share of the shorter track's windows whose best match is at that offset
    similarity: float  # mean similarity of the aligned windows


def hop_of(windows) -> Optional[float]:
    """The window hop in seconds (the median step between window starts), None for a single window."""
    return float(np.median(np.diff(windows[:, 0]))) if len(windows) > 1 else None


def self_similarity(window_vectors) -> Optional[float]:
    """Mean similarity of each window with the next one (one hop later); None with fewer than two windows."""
    if len(window_vectors) < 2:
        return None
    return float(np.mean(np.sum(window_vectors[1:] * window_vectors[:-1], axis=1)))


def align(windows, window_vectors, other_windows, other_vectors) -> Alignment:
    """The best time alignment of the shorter of two window sequences inside the longer."""
    if len(window_vectors) > len(other_vectors):
        windows, window_vectors, other_windows, other_vectors = other_windows, other_vectors, windows, window_vectors
    sims = window_vectors @ other_vectors.T
    offsets = other_windows[sims.argmax(axis=1), 0] - windows[:, 0]
    offset = float(np.median(offsets))
    hop = hop_of(other_windows) or hop_of(windows) or float(other_windows[0, 1] - other_windows[0, 0])
    agreement = float(np.mean(np.abs(offsets - offset) <= hop / 2))
    # The other track's window nearest to each shifted window start.
    aligned = np.abs(other_windows[None, :, 0] - (windows[:, 0] + offset)[:, None]).argmin(axis=1)
    similarity = float(sims[np.arange(len(window_vectors)), aligned].mean())
    return Alignment(offset, agreement, similarity)


def is_version(windows, window_vectors, other_windows, other_vectors, fallback_reference=None) -> bool:
    """Whether the two tracks are versions of one recording (see the module docstring)."""
    if len(window_vectors) == 0 or len(other_vectors) == 0:
        return False
    references = [r for r in (self_similarity(window_vectors), self_similarity(other_vectors)) if r is not None]
    reference = max(references) if references else fallback_reference
    if reference is None:
        return False
    alignment = align(windows, window_vectors, other_windows, other_vectors)
    return alignment.agreement >= MIN_AGREEMENT and alignment.similarity > reference


def median_self_similarity(window_vector_sets) -> Optional[float]:
    """The fallback reference for single-window tracks: the median self-similarity of these tracks."""
    values = [s for s in (self_similarity(v) for v in window_vector_sets) if s is not None]
    return float(np.median(values)) if values else None
