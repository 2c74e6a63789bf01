"""Is one track a version of another (a re-encode, a cut-down, a loudness/EQ change, an alternate mix)?

A version is a *time-aligned* match: the shorter track's windows, in order, match the longer one's at one
time offset. Three steps, on the window vectors the catalog already stores, with no number tuned to an embedder:

1. **Alignment.** The offsets tried are those where each of the shorter track's windows finds its best match
   in the longer one; at each, every window of the shorter track is paired with the longer one's window at
   the same shifted time, and the offset whose pairs match best on average is kept. Music that merely sounds
   alike matches its best windows at scattered places, so no single offset lines most of them up.
2. **Closer than the music itself moves.** At that offset, the mean similarity of the aligned windows must
   exceed the tracks' own *self-similarity one hop apart*: how alike each track is to itself 5 s later (the
   larger of the two). A version's aligned window is at most half a hop away from the original's, plus the
   degradation; a different piece, however alike in style, is further away than the piece moves in 5 s.
   This reference is measured per track, so it follows the embedder's geometry (a trained network puts all
   music close together and its windows close to their neighbours alike) and the music (a static drone
   needs a closer match than a busy cue).
3. **Or the same shape, moved.** An EQ or loudness change moves every window of a trained network's
   embedding by about the same vector, which step 2 sees as distance (a 5 kHz low-pass fails it on the aisfx
   CNN). With each aligned sequence's mean taken out, what is left is how the music moves over time, which a
   version shares: the centred aligned windows must match better than either track's centred windows one hop
   apart, and at least half of the shorter track's windows must find their best match at the common offset.
   A shape needs MIN_SHAPE_WINDOWS windows (30 s); shorter tracks are judged by step 2 alone.

A track shorter than two windows has no self-similarity of its own: the reference is then the median
self-similarity of the catalog tracks examined with it; with none that have two windows, nothing is grouped.
So the method needs no catalog to calibrate against: with an empty catalog there is nothing to group with,
and from the first track on each pair brings its own reference.

The two shares (half the windows agreeing, six windows for a shape) are counts, not similarities: on three
Debian soundtracks (79 tracks) they gave no false pair with dsp or the aisfx CNN (BENCHMARKS.md, Quality),
while a shape from 4 windows grouped a 14 s track with dozens of others.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

# Windows the shorter track needs for its temporal shape to be compared (step 3): 30 s at a 5 s hop.
MIN_SHAPE_WINDOWS = 6
# Share of its windows whose best match must lie at the common offset (step 3).
MIN_AGREEMENT = 0.5


@dataclass
class Alignment:
    offset: float  # seconds: where the shorter track's start lies in the longer one
    similarity: float  # mean similarity of the shorter track's windows with the longer one's at that offset
    paired: np.ndarray  # for each of the shorter track's windows, the longer one's window at that offset
    agreement: float  # share of the shorter track's windows whose best match lies at that offset


def self_similarity(window_vectors) -> Optional[float]:
    """Mean similarity of each window with the next one (one hop later); None with fewer than two windows."""
    if len(window_vectors) < 2:
        return None
    return float(np.mean(np.sum(window_vectors[1:] * window_vectors[:-1], axis=1)))


def _shorter_first(windows, window_vectors, other_windows, other_vectors):
    if len(window_vectors) > len(other_vectors):
        return other_windows, other_vectors, windows, window_vectors
    return windows, window_vectors, other_windows, other_vectors


def align(windows, window_vectors, other_windows, other_vectors) -> Alignment:
    """The time offset at which the shorter of two window sequences best matches the longer, window by window.

    The offsets tried are those at which each of the shorter track's windows finds its best match; at each,
    every window is compared with the longer track's window nearest to its shifted start."""
    windows, window_vectors, other_windows, other_vectors = _shorter_first(
        windows, window_vectors, other_windows, other_vectors
    )
    sims = window_vectors @ other_vectors.T
    rows = np.arange(len(window_vectors))
    best_offsets = other_windows[sims.argmax(axis=1), 0] - windows[:, 0]
    hop = float(np.median(np.diff(other_windows[:, 0]))) if len(other_windows) > 1 else float(other_windows[0, 1])
    best = None
    for offset in np.unique(best_offsets):
        paired = np.abs(other_windows[None, :, 0] - (windows[:, 0] + offset)[:, None]).argmin(axis=1)
        similarity = float(sims[rows, paired].mean())
        if best is None or similarity > best.similarity:
            agreement = float(np.mean(np.abs(best_offsets - offset) <= hop / 2))
            best = Alignment(float(offset), similarity, paired, agreement)
    return best


def placement(windows, window_vectors, other_windows, other_vectors) -> Optional[float]:
    """Where a query's start lies in a longer track (seconds), or None when it does not fit on the track's hop
    grid: the offset at which the query's windows, in order, match the track's best on average, tried at every
    hop and refined between hops by a parabola through the neighbouring offsets' matches (a passage rarely starts
    on the 5 s grid; with the aisfx CNN this placed 0.918 of the quality bench's excerpts within 5 s instead of
    0.886 from the best-match offsets alone, dsp the same 0.968)."""
    if len(other_windows) < 2:
        return None
    hop = float(np.median(np.diff(other_windows[:, 0])))
    steps = np.round((windows[:, 0] - windows[0, 0]) / hop).astype(int)
    sims = window_vectors @ other_vectors.T
    rows = np.arange(len(window_vectors))
    curve = np.array([sims[rows, k + steps].mean() for k in range(len(other_windows) - int(steps[-1]))])
    if len(curve) == 0:
        return None
    k = int(np.argmax(curve))
    shift = 0.0
    if 0 < k < len(curve) - 1:
        before, best, after = curve[k - 1], curve[k], curve[k + 1]
        bend = before - 2 * best + after
        shift = float(np.clip(0.5 * (before - after) / bend, -0.5, 0.5)) if bend < 0 else 0.0
    return max(0.0, float(other_windows[k, 0]) + shift * hop - float(windows[0, 0]))


def _centred(vectors):
    centred = vectors - vectors.mean(axis=0)
    return centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)


def _same_shape(shorter, longer, alignment: Alignment) -> bool:
    """Step 3: the aligned sequences, each without its mean, match better than either does one hop later."""
    if len(shorter) < MIN_SHAPE_WINDOWS or alignment.agreement < MIN_AGREEMENT:
        return False
    mine = _centred(shorter)
    theirs_aligned = _centred(longer[alignment.paired])
    span = _centred(longer[alignment.paired.min() : alignment.paired.max() + 1])
    matched = float(np.mean(np.sum(mine * theirs_aligned, axis=1)))
    return matched > max(self_similarity(mine), self_similarity(span) if len(span) > 1 else -1.0)


def is_version(windows, window_vectors, other_windows, other_vectors, fallback_reference=None) -> bool:
    """Whether the two tracks are versions of one recording (see the module docstring)."""
    if len(window_vectors) == 0 or len(other_vectors) == 0:
        return False
    _, shorter, _, longer = _shorter_first(windows, window_vectors, other_windows, other_vectors)
    references = [self_similarity(window_vectors), self_similarity(other_vectors)]
    if len(shorter) < 2:  # one window says nothing about how the shorter track moves
        references.append(fallback_reference)
    references = [r for r in references if r is not None]
    if not references or (len(shorter) < 2 and fallback_reference is None):
        return False
    alignment = align(windows, window_vectors, other_windows, other_vectors)
    return alignment.similarity > max(references) or _same_shape(shorter, longer, alignment)


def median_self_similarity(window_vector_sets) -> Optional[float]:
    """The reference for a single-window track: the median self-similarity of these (catalog) tracks."""
    values = [s for s in (self_similarity(v) for v in window_vector_sets) if s is not None]
    return float(np.median(values)) if values else None
