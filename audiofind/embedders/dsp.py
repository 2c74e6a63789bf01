"""The ``dsp`` embedder: no model weights, window vectors from signal features.

Per frame (22.05 kHz, 2048-sample Hann window, 512-sample hop): a 64-band log-mel spectrum (40 Hz-8 kHz,
below the cut-off of low-bitrate MP3), a 12-bin chroma vector, a spectral-flux onset value and the spectral
valleys (the mean of the weakest 2 % of FFT bins, in dB) of six octave bands from 0 to 6.4 kHz. Log-mel
values and valleys more than 80 dB below a window's loudest log-mel value are raised to that floor.
Per 10 s window (5 s hop), nine groups of statistics:

- what the piece is (they tell one piece's windows from another's):
  ``shape``      mean log-mel spectrum minus its own mean across bands (gain-free spectral envelope;
                 with an orthonormal DCT its dot products equal those of MFCCs 1..63),
  ``dynamics``   standard deviation over time of each log-mel band,
  ``chroma``     mean of the per-frame peak-normalised chroma, as a distribution minus the uniform one,
  ``chroma_var`` its standard deviation over time minus its mean across pitch classes,
  ``rhythm``     autocorrelation of the onset envelope at 16 lags from 0.09 s to 2.1 s;
- how it is played and produced (what "more like this" needs; chosen on a development set of game music,
  bench/common.DEVELOPMENT_MUSIC, and measured on other albums, see BENCHMARKS.md "Search quality"):
  ``envelope``   MFCCs 1..20 of the mean log-mel spectrum (the coarse envelope: instrumentation),
  ``texture``    standard deviation of the frame-to-frame change of MFCCs 1..20 (how fast the timbre moves),
  ``valleys``    the six band valleys' mean minus their mean across bands (noise floor, reverb, density),
  ``modulation`` the modulation spectrum: power of 8 band-energy envelopes in 6 octaves from 0.25 to 16 Hz,
                 log, minus its mean (tremolo, note rate, beat strength per register).

``texture`` and ``valleys`` are standardised with fixed constants (their mean and spread over the development
set's windows) before normalisation. Every group is L2-normalised on its own and weighted before the
concatenation is L2-normalised, so no single feature dominates the cosine. The two uses weigh them apart:

- a window vector (segment search, excerpts, versions) weighs the first five groups 1 and the last four 0.25:
  with the production groups at full weight, white noise and a 64 kbps codec (which fill the valleys and move
  the texture) cut excerpt recall@1 from 0.99 to 0.90 on the soundtracks;
- the track vector ("more like this", track-mode search) weighs the first five 0.5 and the last four 1,
  then takes the L2-normalised mean across the windows next to the L2-normalised standard deviation across
  them (how the piece changes over minutes), and next to those, weighted COV_WEIGHT, a single-Gaussian timbre
  model: the covariance over the whole track of its frames' log-mel spectra in 16 bands, through the matrix
  logarithm (dot products of the log matrices), standardised with fixed constants from the development set.
  With it, "more like this" album precision@5 went from 0.720 to 0.734 on the development set, from 0.724 to
  0.752 on the soundtracks and from 0.745 to 0.795 on held-out music (weight 0.8: 0.746, 0.772, 0.793, but
  from 0.6 the generated albums of tests/test_refine.py, from 0.7 those of tests/test_dsp.py, start to mix).

These are fixed transforms; nothing is learned at run time. Statistics over 10 s
change little when a window shifts by a couple of seconds, so an excerpt's windows find their source's windows
although the two are not aligned.
"""

from typing import Iterable

import numpy as np

from audiofind.embedders.base import Embedder, Embedding, l2_normalise
from audiofind.hookspecs import hookimpl

SAMPLE_RATE = 22050
N_FFT = 2048
HOP = 512
N_MELS = 64
FMIN, FMAX = 40.0, 8000.0
FLOOR_DB = 80.0  # log-mel values more than this below a window's loudest are raised to it (codec/silence noise)
RHYTHM_LAGS = np.unique(np.geomspace(4, 90, 17).astype(int))[:16]  # frames: 0.09 s .. 2.1 s
N_MFCC = 20
VALLEY_EDGES = (0.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0)  # Hz: six octave bands
VALLEY_SHARE = 0.02
MODULATION_BANDS, MODULATION_EDGES = 8, (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # mel-band groups, Hz
# name, size, weight in the window vectors, weight in the track vector
GROUPS = (
    ("shape", N_MELS, 1.0, 0.5), ("dynamics", N_MELS, 1.0, 0.5), ("chroma", 12, 1.0, 0.5),
    ("chroma_var", 12, 1.0, 0.5), ("rhythm", len(RHYTHM_LAGS), 1.0, 0.5),
    ("envelope", N_MFCC, 0.25, 1.0), ("texture", N_MFCC, 0.25, 1.0), ("valleys", len(VALLEY_EDGES) - 1, 0.25, 1.0),
    ("modulation", MODULATION_BANDS * (len(MODULATION_EDGES) - 1), 0.25, 1.0),
)
WINDOW_WEIGHTS, TRACK_WEIGHTS = (np.repeat([g[i] for g in GROUPS], [g[1] for g in GROUPS]) for i in (2, 3))
# Mean and standard deviation over the development set's windows (bench/common.DEVELOPMENT_MUSIC, 100 tracks).
TEXTURE_MEAN = np.array([6.50, 4.88, 3.90, 3.48, 3.22, 3.10, 3.04, 3.02, 2.98, 2.92,
                         2.89, 2.84, 2.77, 2.72, 2.73, 2.75, 2.78, 2.75, 2.69, 2.60])
TEXTURE_STD = np.array([3.54, 2.22, 1.41, 1.14, 0.90, 0.78, 0.75, 0.74, 0.70, 0.66,
                        0.62, 0.60, 0.55, 0.52, 0.55, 0.58, 0.62, 0.62, 0.55, 0.50])
VALLEYS_MEAN = np.array([11.0, 14.0, 4.88, -4.06, -9.09, -16.7])
VALLEYS_STD = np.array([7.56, 4.08, 3.02, 3.21, 4.15, 4.44])


class _Frames:
    """Frame-level features of a stream whose frames continue exactly across blocks."""

    def __init__(self):
        import librosa

        self.window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
        self.mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX).T
        self.chroma = librosa.filters.chroma(sr=SAMPLE_RATE, n_fft=N_FFT).T
        bins = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE)
        self.bands = [slice(*np.flatnonzero((bins >= a) & (bins < b))[[0, -1]] + [0, 1])
                      for a, b in zip(VALLEY_EDGES[:-1], VALLEY_EDGES[1:])]
        self.rest = np.zeros(0, dtype=np.float32)

    def feed(self, block: np.ndarray, last: bool = False):
        """(logmel (n, 64) dB, chroma (n, 12), valleys (n, 6) dB) of the frames this block completes."""
        x = np.concatenate([self.rest, np.asarray(block, dtype=np.float32)])
        if last and len(x) and len(x) < N_FFT:
            x = np.pad(x, (0, N_FFT - len(x)))  # a track shorter than one frame still gets one
        if len(x) < N_FFT:
            self.rest = x
            return np.zeros((0, N_MELS), np.float32), np.zeros((0, 12), np.float32), np.zeros((0, 6), np.float32)
        import scipy.fft

        n = 1 + (len(x) - N_FFT) // HOP
        frames = np.lib.stride_tricks.sliding_window_view(x[: (n - 1) * HOP + N_FFT], N_FFT)[::HOP]
        self.rest = x[n * HOP :]
        spectrum = scipy.fft.rfft(frames * self.window, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        logmel = 10 * np.log10(power @ self.mel + 1e-10)
        valleys = []
        for band in self.bands:
            k = max(1, int(round(VALLEY_SHARE * (band.stop - band.start))))
            weakest = np.partition(power[:, band], k - 1, axis=1)[:, :k]
            valleys.append(10 * np.log10(weakest.mean(axis=1) + 1e-10))
        return logmel.astype(np.float32), (power @ self.chroma).astype(np.float32), np.stack(valleys, 1).astype(np.float32)


def window_features(logmel: np.ndarray, chroma: np.ndarray, valleys: np.ndarray) -> np.ndarray:
    """The nine groups (see the module docstring) of one window's frames, each L2-normalised, unweighted."""
    import scipy.fft

    floor_db = logmel.max() - FLOOR_DB
    logmel = np.maximum(logmel, floor_db)
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
    mfcc = scipy.fft.dct(logmel, type=2, norm="ortho", axis=1)[:, 1 : N_MFCC + 1]
    envelope = mfcc.mean(axis=0)
    texture = np.diff(mfcc, axis=0).std(axis=0) if len(mfcc) > 2 else np.zeros(N_MFCC)
    texture = (texture - TEXTURE_MEAN) / TEXTURE_STD
    floor = np.maximum(valleys, floor_db).mean(axis=0)  # the same floor: codec holes and dither look alike
    floor = (floor - floor.mean() - VALLEYS_MEAN) / VALLEYS_STD
    modulation = _modulation(logmel)
    groups = (shape, dynamics, chroma_mean, chroma_var, rhythm, envelope, texture, floor, modulation)
    vector = np.concatenate([l2_normalise(g) for g in groups])
    if not vector.any():  # digital silence: one fixed direction, so silence matches silence
        vector = np.ones_like(vector)
    return vector


def _modulation(logmel: np.ndarray) -> np.ndarray:
    """Log power of each band group's energy envelope (mean-removed, Hann-windowed) per modulation octave."""
    frames_per_second = SAMPLE_RATE / HOP
    envelopes = logmel.reshape(len(logmel), MODULATION_BANDS, -1).mean(axis=2)
    envelopes = envelopes - envelopes.mean(axis=0)
    power = np.abs(np.fft.rfft(envelopes * np.hanning(len(envelopes))[:, None], axis=0)) ** 2
    rates = np.fft.rfftfreq(len(envelopes), 1 / frames_per_second)
    bands = [power[(rates >= a) & (rates < b)].sum(axis=0) for a, b in zip(MODULATION_EDGES[:-1], MODULATION_EDGES[1:])]
    log_power = np.log10(np.stack(bands) + 1e-6)
    return (log_power - log_power.mean()).ravel()


# Track vector, v3: a single-Gaussian timbre model next to the window statistics. The 64 log-mel bands are averaged in
# fours to 16 bands; their frame-level covariance over the track (pooled from each window's moments, the windows'
# 80 dB floor applied) goes through the matrix logarithm (log-Euclidean: dot products of the upper triangles, the
# off-diagonal entries times sqrt 2, are those of the log matrices), is standardised with fixed constants (its mean
# and spread over the development set's tracks, bench/common.DEVELOPMENT_MUSIC), L2-normalised and weighted.
COV_BANDS = 16
COV_WEIGHT = 0.5
COV_SHRINK = 1e-3  # of the mean band variance, added to the diagonal (a constant band, silence)
COV_MEAN = np.array([
    3.85, 0.981, 0.505, 0.395, 0.317, 0.29, 0.226, 0.177, 0.201, 0.185, 0.133, 0.1, 0.14, 0.133, 0.156,
    0.164, 3.05, 0.717, 0.579, 0.431, 0.345, 0.325, 0.283, 0.24, 0.251, 0.212, 0.177, 0.15, 0.114,
    0.105, 0.121, 3.1, 0.534, 0.547, 0.543, 0.325, 0.337, 0.325, 0.262, 0.257, 0.156, 0.153, 0.154,
    0.116, 0.168, 3.07, 0.524, 0.41, 0.576, 0.457, 0.375, 0.314, 0.227, 0.246, 0.18, 0.142, 0.126,
    0.133, 3.05, 0.504, 0.512, 0.493, 0.461, 0.332, 0.346, 0.206, 0.181, 0.155, 0.122, 0.116, 3.06,
    0.557, 0.501, 0.399, 0.438, 0.257, 0.326, 0.195, 0.135, 0.135, 0.095, 2.9, 0.519, 0.543, 0.395,
    0.495, 0.257, 0.303, 0.198, 0.142, 0.115, 2.78, 0.64, 0.622, 0.456, 0.436, 0.303, 0.223, 0.17,
    0.104, 2.56, 0.745, 0.688, 0.506, 0.353, 0.309, 0.207, 0.118, 2.44, 0.781, 0.719, 0.507, 0.368,
    0.287, 0.172, 2.21, 0.879, 0.777, 0.55, 0.346, 0.239, 2.15, 1, 0.785, 0.571, 0.372, 2, 1.13, 0.827,
    0.639, 1.9, 1.38, 1.05, 1.96, 1.85, 2.51
])
COV_STD = np.array([
    1.43, 0.382, 0.269, 0.251, 0.236, 0.206, 0.246, 0.236, 0.249, 0.21, 0.224, 0.21, 0.2, 0.203, 0.195,
    0.224, 1.23, 0.385, 0.267, 0.233, 0.218, 0.214, 0.198, 0.212, 0.188, 0.169, 0.168, 0.166, 0.155,
    0.14, 0.154, 0.707, 0.308, 0.25, 0.291, 0.232, 0.237, 0.178, 0.164, 0.173, 0.155, 0.146, 0.158,
    0.116, 0.14, 0.634, 0.304, 0.304, 0.255, 0.215, 0.206, 0.236, 0.182, 0.172, 0.146, 0.125, 0.153,
    0.143, 0.646, 0.341, 0.271, 0.22, 0.218, 0.19, 0.219, 0.164, 0.161, 0.158, 0.146, 0.171, 0.656,
    0.368, 0.251, 0.208, 0.212, 0.209, 0.216, 0.192, 0.134, 0.136, 0.142, 0.663, 0.343, 0.29, 0.22,
    0.212, 0.192, 0.187, 0.14, 0.15, 0.139, 0.699, 0.365, 0.261, 0.207, 0.201, 0.186, 0.186, 0.156,
    0.143, 0.67, 0.356, 0.237, 0.178, 0.194, 0.163, 0.161, 0.15, 0.689, 0.347, 0.245, 0.224, 0.175,
    0.176, 0.156, 0.659, 0.324, 0.246, 0.197, 0.184, 0.175, 0.72, 0.336, 0.272, 0.212, 0.2, 0.868,
    0.353, 0.236, 0.223, 0.715, 0.354, 0.309, 0.76, 0.442, 0.871
])


def window_band_moments(logmel: np.ndarray) -> tuple:
    """(frame count, sum, sum of outer products) of one window's 16-band log-mel frames (float64), after the same
    80 dB floor as window_features; summed over windows they give the track's band mean and covariance."""
    logmel = np.maximum(logmel, logmel.max() - FLOOR_DB)
    bands = logmel.reshape(len(logmel), COV_BANDS, -1).mean(axis=2).astype(np.float64)
    return len(bands), bands.sum(axis=0), bands.T @ bands


def band_covariance(moments) -> np.ndarray:
    """The standardised log-Euclidean vector (136) of the band covariance pooled from the windows' moments."""
    count = max(sum(m[0] for m in moments), 1)
    mean = sum(m[1] for m in moments) / count
    covariance = sum(m[2] for m in moments) / count - np.outer(mean, mean)
    covariance += COV_SHRINK * max(np.trace(covariance) / COV_BANDS, 1e-9) * np.eye(COV_BANDS)
    values, vectors = np.linalg.eigh(covariance)
    log_matrix = (vectors * np.log(np.maximum(values, 1e-9))) @ vectors.T
    upper = np.triu_indices(COV_BANDS)
    vector = log_matrix[upper] * np.where(upper[0] == upper[1], 1.0, np.sqrt(2.0))
    return (vector - COV_MEAN) / COV_STD


def dsp_track_vector(groups: np.ndarray, moments) -> np.ndarray:
    """From the windows' groups weighted for the track: concat(mean, standard deviation) across windows, each
    L2-normalised, and the band covariance (``moments``: window_band_moments of each window) L2-normalised and
    weighted COV_WEIGHT; then the whole, L2-normalised."""
    weighted = l2_normalise(groups * TRACK_WEIGHTS)
    parts = [l2_normalise(weighted.mean(axis=0)), l2_normalise(weighted.std(axis=0)),
             COV_WEIGHT * l2_normalise(band_covariance(moments))]
    return l2_normalise(np.concatenate(parts))


class DspEmbedder(Embedder):
    name = "dsp"
    version = "3"  # 2: texture, envelope, valleys and modulation groups, mean + spread track vector; 3: band covariance
    sample_rate = SAMPLE_RATE
    window_dim = sum(group[1] for group in GROUPS)
    window_seconds = 10.0
    hop_seconds = 5.0

    @property
    def dim(self) -> int:  # mean and spread of the window groups, and the band covariance's upper triangle
        return 2 * self.window_dim + COV_BANDS * (COV_BANDS + 1) // 2

    def embed(self, blocks: Iterable[np.ndarray]) -> Embedding:
        frames_per_second = SAMPLE_RATE / HOP
        frames_per_window = int(round(self.window_seconds * frames_per_second))

        def first_frame(k):  # window k starts at k * hop_seconds exactly (to the nearest frame): no drift
            return int(round(k * self.hop_seconds * frames_per_second))

        extractor = _Frames()
        buffers = ([], [], [])  # log-mel, chroma, valleys
        first = 0  # absolute index of the buffer's first frame
        samples = 0
        windows, vectors, moments = [], [], []

        def take(a, b):
            a = max(a, first)
            logmel, chroma, valleys = (np.concatenate(buffer)[a - first : b - first] for buffer in buffers)
            moments.append(window_band_moments(logmel))
            return window_features(logmel, chroma, valleys)

        def consume(block, last=False):
            nonlocal first
            for buffer, features in zip(buffers, extractor.feed(block, last)):
                buffer.append(features)
            available = first + sum(len(m) for m in buffers[0])
            while first_frame(len(vectors)) + frames_per_window <= available:
                k = len(vectors)
                vectors.append(take(first_frame(k), first_frame(k) + frames_per_window))
                windows.append((k * self.hop_seconds, k * self.hop_seconds + self.window_seconds))
            # Keep the frames from the last window's start on: a final window ending at the track's end may
            # reach back there. Memory stays at about one window plus one block of frames.
            keep_from = max(first_frame(len(vectors) - 1), first) if vectors else first
            if keep_from > first:
                for buffer in buffers:
                    buffer[:] = [np.concatenate(buffer)[keep_from - first :]]
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
        groups = np.asarray(vectors)
        window_vectors = l2_normalise(groups * WINDOW_WEIGHTS).astype(np.float32)
        return Embedding(
            vector=dsp_track_vector(groups, moments).astype(np.float32),
            windows=np.asarray(windows, dtype=np.float32),
            window_vectors=window_vectors,
            tags=[],
        )


@hookimpl
def register_embedders():
    return [DspEmbedder]
