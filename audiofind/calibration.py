"""Excerpt search that holds up on noisy, compressed recordings: the catalog's nuisance direction.

A clip a user drops is often worse than the catalog's copy: hiss or room noise, a low-bitrate codec. A network
moves every window of such a clip by about the same vector, whatever the music (a trained network more than the
difference between two pieces: the aisfx CNN finds 0.74 of 20 s excerpts with white noise at 30 dB SNR and a 64
kbps codec, and all of them clean or through the codec alone). So the catalog learns that vector once, from its
own audio: excerpts of up to CALIBRATION_TRACKS catalog tracks are degraded in each way of DEGRADATIONS
(generated noise, soundfile's MP3 encoder), embedded, and the aligned windows' shifts from the clean excerpt's
are summarised by their principal direction(s), DIRECTIONS of them. Segment search then compares windows with
that direction taken out of both sides (nuisance attribute projection), so the degradation no longer counts.

Learned from the catalog's own tracks with these degradations, which do not include the quality bench's
(white noise at 30 dB and 64 kbps, bench/bench_quality.py), it raised that bench's excerpt recall@1 with aisfx
from 0.741 to 0.994 and the match placed within 5 s from 0.68 to 0.89 (0.92 with versions.placement; dsp:
0.994 to 1.000; BENCHMARKS.md
"Excerpts on a trained network"). The result is kept with the catalog and the
embedder identity it was learned for: a catalog embedded by another embedder ignores it until it is learned
again (``audiofind calibrate``; ingest does it once the catalog holds MIN_TRACKS tracks, and reindex after).
"""

import io
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import soundfile as sf

from audiofind import audio
from audiofind.embedders.base import l2_normalise

logger = logging.getLogger(__name__)

CALIBRATION_TRACKS = 30  # catalog tracks excerpts are taken from
CLIPS_PER_TRACK = 2
CLIP_SECONDS = 20.0
DIRECTIONS = 1  # measured on aisfx: 1 to 4 directions gave the same recall (0.98), 8 no more
MIN_TRACKS = 10  # a catalog is calibrated automatically once it holds this many tracks


def _noise(clip, snr_db, colour, rng):
    noise = rng.standard_normal(len(clip))
    if colour == "pink":  # power falling as 1/f, as room and traffic noise roughly do
        spectrum = np.fft.rfft(noise)
        spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
        spectrum[0] = 0.0
        noise = np.fft.irfft(spectrum, len(clip))
    noise *= np.sqrt(np.mean(clip**2) / max(np.mean(noise**2), 1e-12) / 10 ** (snr_db / 10))
    return (clip + noise).astype(np.float32)


def _mp3(clip, sample_rate, compression):
    encoded = io.BytesIO()
    sf.write(encoded, np.clip(clip, -1, 1), sample_rate, format="MP3", subtype="MPEG_LAYER_III",
             compression_level=compression, bitrate_mode="CONSTANT")
    encoded.seek(0)
    decoded, _ = sf.read(encoded, dtype="float32")
    return np.pad(decoded, (0, max(0, len(clip) - len(decoded))))[: len(clip)]


# What recordings of music suffer: hiss (white noise), room and traffic noise (pink), low-bitrate codecs
# (compression 0.8 is ~64-80 kbps at 44.1 kHz, 0.95 the lowest), alone and together.
DEGRADATIONS = {
    "white noise, 20 dB": lambda clip, sr, rng: _noise(clip, 20, "white", rng),
    "white noise, 35 dB, MP3": lambda clip, sr, rng: _mp3(_noise(clip, 35, "white", rng), sr, 0.8),
    "pink noise, 20 dB, MP3": lambda clip, sr, rng: _mp3(_noise(clip, 20, "pink", rng), sr, 0.8),
    "pink noise, 35 dB": lambda clip, sr, rng: _noise(clip, 35, "pink", rng),
    "lowest-bitrate MP3": lambda clip, sr, rng: _mp3(clip, sr, 0.95),
}


def learn_directions(embedder, clips, rng) -> np.ndarray:
    """(DIRECTIONS, window_dim): the principal directions in which DEGRADATIONS move the clips' windows."""
    shifts = []
    for clip in clips:
        clean = embedder.embed([clip]).window_vectors
        for degrade in DEGRADATIONS.values():
            moved = embedder.embed([degrade(clip, embedder.sample_rate, rng)]).window_vectors
            n = min(len(clean), len(moved))
            shifts.append(moved[:n] - clean[:n])
    shifts = np.concatenate(shifts).astype(np.float64)
    return np.linalg.svd(shifts, full_matrices=False)[2][:DIRECTIONS].astype(np.float32)


def without(vectors, directions) -> np.ndarray:
    """The vectors with the directions taken out, L2-normalised."""
    vectors = np.asarray(vectors, np.float32)
    if directions is None or len(vectors) == 0:
        return vectors
    return l2_normalise(vectors - (vectors @ directions.T) @ directions)


@dataclass
class Calibration:
    directions: np.ndarray  # (DIRECTIONS, window_dim)
    embedder: dict  # the identity of the embedder it was learned for
    tracks: int  # catalog tracks the excerpts came from
    computed_at: float
    seconds: float


def calibrate(catalog, rng=None) -> Calibration:
    """Learn the catalog's nuisance direction from its own audio and keep it with the catalog."""
    rng = rng or np.random.default_rng()
    started = time.perf_counter()
    embedder, index = catalog.embedder, catalog.index
    count = index.count()
    if count == 0:
        raise ValueError("the catalog is empty: ingest tracks before calibrating")
    offsets = sorted(rng.choice(count, min(count, CALIBRATION_TRACKS), replace=False).tolist())
    clips = []
    for offset in offsets:
        for track in index.list(int(offset), 1):
            with catalog.storage.local_copy(track.storage_key) as path:
                for _ in range(CLIPS_PER_TRACK):
                    start = float(rng.uniform(0, max(0.0, track.duration - CLIP_SECONDS)))
                    clips.append(audio.load(path, embedder.sample_rate, start=start, end=start + CLIP_SECONDS))
    directions = learn_directions(embedder, clips, rng)
    result = Calibration(directions, embedder.identity, len(offsets), time.time(), time.perf_counter() - started)
    if catalog.calibration_store is None:
        raise ValueError(f"the {index.name!r} index keeps no calibration")
    catalog.calibration_store.save(result)
    logger.info("calibrated excerpt search on %d tracks in %.1f s", len(offsets), result.seconds)
    return result


def needs_calibration(catalog) -> bool:
    """Whether the catalog holds MIN_TRACKS tracks or more and no calibration for its embedder."""
    store = catalog.calibration_store
    if store is None or catalog.index.count() < MIN_TRACKS:
        return False
    return not learned_for(store.load(), catalog.index)


def learned_for(stored: Optional[Calibration], index) -> bool:
    """Whether a stored calibration was learned for the embedder that built ``index``'s catalog."""
    return stored is not None and stored.embedder == index.embedder_identity()


class LocalCalibrationStore:
    """calibration.npz in the local index's DATA_DIR, replaced whole."""

    def __init__(self, root):
        self.path = root / "calibration.npz"
        self._cached = (None, None)  # (file's mtime and size, calibration)

    def load(self) -> Optional[Calibration]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._cached[0] != stamp:
            with np.load(self.path, allow_pickle=False) as data:
                info = json.loads(str(data["info"]))
                self._cached = (stamp, Calibration(np.asarray(data["directions"], np.float32), **info))
        return self._cached[1]

    def save(self, calibration: Calibration) -> None:
        info = {k: getattr(calibration, k) for k in ("embedder", "tracks", "computed_at", "seconds")}
        partial = self.path.with_suffix(".part.npz")
        np.savez(partial, directions=calibration.directions, info=np.array(json.dumps(info)))
        os.replace(partial, self.path)


class AtlasCalibrationStore:
    """The ``calibration`` document of the ``meta`` collection."""

    ID = "calibration"

    def __init__(self, db):
        self.db = db

    def load(self) -> Optional[Calibration]:
        doc = self.db["meta"].find_one({"_id": self.ID})
        if doc is None:
            return None
        directions = np.asarray(doc["directions"], np.float32)
        return Calibration(directions, doc["embedder"], doc["tracks"], doc["computed_at"], doc["seconds"])

    def save(self, calibration: Calibration) -> None:
        doc = {"_id": self.ID, "directions": calibration.directions.tolist(), "embedder": calibration.embedder,
               "tracks": calibration.tracks, "computed_at": calibration.computed_at, "seconds": calibration.seconds}
        self.db["meta"].replace_one({"_id": self.ID}, doc, upsert=True)


def for_index(index):
    """The store that keeps the calibration with ``index``'s catalog; None for a backend that has none."""
    if index.name == "local":
        return LocalCalibrationStore(index.root)
    if index.name == "atlas":
        return AtlasCalibrationStore(index.db)
    return None
