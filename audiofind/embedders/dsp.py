"""The ``dsp`` embedder: no model weights, window vectors from signal features.

Per frame (22.05 kHz, 2048-sample Hann window, 512-sample hop): a 64-band log-mel spectrum (40 Hz-8 kHz,
below the cut-off of low-bitrate MP3), a 12-bin chroma vector and a spectral-flux onset value.
Per 10 s window (5 s hop), five groups of statistics:

- timbre:   ``shape``    mean log-mel spectrum minus its own mean across bands (gain-free spectral envelope;
                         with an orthonormal DCT its dot products equal those of MFCCs 1..63),
            ``dynamics`` standard deviation over time of each log-mel band;
- harmony:  ``chroma``   mean of the per-frame peak-normalised chroma, as a distribution minus the uniform one,
            ``chroma_var`` its standard deviation over time minus its mean across pitch classes;
- rhythm:   ``rhythm``   autocorrelation of the onset envelope at 16 lags from 0.09 s to 2.1 s
                         (the beat and metre periodicity, independent of where the window starts).

Every group is L2-normalised on its own before the concatenation is L2-normalised, so each group holds
one fifth of the vector's energy and no single feature dominates the cosine. These are fixed transforms;
nothing is learned. Statistics over 10 s change little when a window shifts by a couple of seconds, so
an excerpt's windows find their source's windows although the two are not aligned.
"""

from typing import Iterable

import numpy as np

from audiofind.embedders.base import Embedder, Embedding, l2_normalise, track_vector
from audiofind.hookspecs import hookimpl

SAMPLE_RATE = 22050
N_FFT = 2048
HOP = 512
N_MELS = 64
FMIN, FMAX = 40.0, 8000.0
FLOOR_DB = 80.0  # log-mel values more than this below a window's loudest are raised to it (codec/silence noise)
RHYTHM_LAGS = np.unique(np.geomspace(4, 90, 17).astype(int))[:16]  # frames: 0.09 s .. 2.1 s
GROUPS = (("shape", N_MELS), ("dynamics", N_MELS), ("chroma", 12), ("chroma_var", 12), ("rhythm", len(RHYTHM_LAGS)))


class _Frames:
    """Frame-level features of a stream whose frames continue exactly across blocks."""

    def __init__(self):
        import librosa

        self.window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
        self.mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX).T
        self.chroma = librosa.filters.chroma(sr=SAMPLE_RATE, n_fft=N_FFT).T
        self.rest = np.zeros(0, dtype=np.float32)

    def feed(self, block: np.ndarray, last: bool = False):
        """(logmel (n, 64) dB, chroma (n, 12)) of the frames this block completes."""
        x = np.concatenate([self.rest, np.asarray(block, dtype=np.float32)])
        if last and len(x) and len(x) < N_FFT:
            x = np.pad(x, (0, N_FFT - len(x)))  # a track shorter than one frame still gets one
        if len(x) < N_FFT:
            self.rest = x
            return np.zeros((0, N_MELS), np.float32), np.zeros((0, 12), np.float32)
        import scipy.fft

        n = 1 + (len(x) - N_FFT) // HOP
        frames = np.lib.stride_tricks.sliding_window_view(x[: (n - 1) * HOP + N_FFT], N_FFT)[::HOP]
        self.rest = x[n * HOP :]
        spectrum = scipy.fft.rfft(frames * self.window, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        logmel = 10 * np.log10(power @ self.mel + 1e-10)
        return logmel.astype(np.float32), (power @ self.chroma).astype(np.float32)


def window_features(logmel: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """The window vector (see the module docstring) of one window's frames."""
    logmel = np.maximum(logmel, logmel.max() - FLOOR_DB)
    mean = logmel.mean(axis=0)
    shape = mean - mean.mean()
    dynamics = logmel.std(axis=0)
    peak_normalised = chroma / (chroma.max(axis=1, keepdims=True) + 1e-9)
    profile = peak_normalised.mean(axis=0)
    chroma_mean = profile / max(profile.sum(), 1e-9) - 1 / 12 if profile.sum() > 1e-9 else np.zeros(12)
    spread = peak_normalised.std(axis=0)
    chroma_var = spread - spread.mean()
    onset = np.maximum(np.diff(logmel, axis=0), 0).mean(axis=1) if len(logmel) > 1 else np.zeros(1)
    onset = onset - onset.mean()
    rhythm = np.zeros(len(RHYTHM_LAGS))
    energy = float(onset @ onset)
    if energy > 1e-9:
        usable = RHYTHM_LAGS[RHYTHM_LAGS < len(onset)]
        rhythm[: len(usable)] = [onset[:-lag] @ onset[lag:] / energy for lag in usable]
    parts = [l2_normalise(g) for g in (shape, dynamics, chroma_mean, chroma_var, rhythm)]
    vector = np.concatenate(parts)
    if not vector.any():  # digital silence: one fixed direction, so silence matches silence
        vector = np.ones_like(vector)
    return l2_normalise(vector)


class DspEmbedder(Embedder):
    name = "dsp"
    version = "1"
    sample_rate = SAMPLE_RATE
    window_dim = sum(size for _, size in GROUPS)
    window_seconds = 10.0
    hop_seconds = 5.0

    def embed(self, blocks: Iterable[np.ndarray]) -> Embedding:
        frames_per_second = SAMPLE_RATE / HOP
        frames_per_window = int(round(self.window_seconds * frames_per_second))

        def first_frame(k):  # window k starts at k * hop_seconds exactly (to the nearest frame): no drift
            return int(round(k * self.hop_seconds * frames_per_second))

        extractor = _Frames()
        mel_buffer, chroma_buffer = [], []
        first = 0  # absolute index of the buffer's first frame
        samples = 0
        windows, vectors = [], []

        def take(a, b):
            a = max(a, first)
            logmel = np.concatenate(mel_buffer)[a - first : b - first]
            chroma = np.concatenate(chroma_buffer)[a - first : b - first]
            return window_features(logmel, chroma)

        def consume(block, last=False):
            nonlocal first
            logmel, chroma = extractor.feed(block, last)
            mel_buffer.append(logmel)
            chroma_buffer.append(chroma)
            available = first + sum(len(m) for m in mel_buffer)
            while first_frame(len(vectors)) + frames_per_window <= available:
                k = len(vectors)
                vectors.append(take(first_frame(k), first_frame(k) + frames_per_window))
                windows.append((k * self.hop_seconds, k * self.hop_seconds + self.window_seconds))
            # Keep the frames from the last window's start on: a final window ending at the track's end may
            # reach back there. Memory stays at about one window plus one block of frames.
            keep_from = max(first_frame(len(vectors) - 1), first) if vectors else first
            if keep_from > first:
                mel_buffer[:] = [np.concatenate(mel_buffer)[keep_from - first :]]
                chroma_buffer[:] = [np.concatenate(chroma_buffer)[keep_from - first :]]
                first = keep_from
            return available

        for block in blocks:
            samples += len(block)
            consume(block)
        available = consume(np.zeros(0, np.float32), last=True)
        duration = samples / SAMPLE_RATE
        if not vectors:  # shorter than one window: one window over all of it
            vectors.append(take(first, available))
            windows.append((0.0, duration))
        elif duration - windows[-1][1] > 0.25:
            # The end is not covered yet: one more window, ending at the end.
            vectors.append(take(available - frames_per_window, available))
            windows.append((duration - self.window_seconds, duration))
        window_vectors = np.asarray(vectors, dtype=np.float32)
        return Embedding(
            vector=track_vector(window_vectors),
            windows=np.asarray(windows, dtype=np.float32),
            window_vectors=window_vectors,
            tags=[],
        )


@hookimpl
def register_embedders():
    return [DspEmbedder]
