"""Musical facts people filter a catalog by: key and mode, vocals or instrumental, energy.

``MusicFacts`` measures a track while its blocks stream through once, like ``audio.Analysis`` (and beside it:
``blocks = facts.tap(analysis.tap(blocks))``). Values come from short-time spectra:

- key:    the track's chroma (55 Hz-2 kHz on ~370 ms frames, square-root compressed, summed)
          correlated with the 24 rotations of Temperley's major and minor key profiles; the best is the key,
          and its correlation's margin over the runner-up's is the confidence;
- vocals: a sung voice's partials move with its vibrato (5-7.5 Hz) and its vowels' formants, while an
          instrument's partials hold still between notes and drums move every band at once. Per 2.5 s of
          ~90 ms frames every 20 ms, the log-spectrum of 1-4 kHz with each frame's mean across bands and each
          band's mean over time removed; the share of its modulation energy at 5-7.5 Hz (of 1-20 Hz) is the
          vocal score;
- energy: loudness (gated mean power, -40..-5 dBFS to 0..1), brightness (spectral centroid, 250 Hz..4 kHz on a
          log scale) and activity (mean positive log-mel change per frame), averaged.

Where the embedder returns AudioSet tags (Cnn14), ``vocals_from_tags`` decides vocals instead.
Accuracy of each: BENCHMARKS.md, "Musical facts" (bench/bench_facts.py).
"""

from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

from audiofind.audio import mel_filters

PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Temperley's key profiles (Music and Probability, 2007: Kostka-Payne corpus), tonic first.
MAJOR_PROFILE = np.array([0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400])
MINOR_PROFILE = np.array([0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330])

# AudioSet classes (audiofind/data/audioset_class_labels.csv) that mean a voice is in the music.
VOCAL_LABELS = frozenset({
    "Singing", "Choir", "Yodeling", "Chant", "Male singing", "Female singing", "Child singing",
    "Synthetic singing", "Rapping", "Humming", "Vocal music", "A capella", "Beatboxing", "Speech",
    "Male speech, man speaking", "Female speech, woman speaking", "Narration, monologue",
})
TAG_VOCAL_THRESHOLD = 0.15  # Cnn14 sigmoid score; not measurable here without the real checkpoint
SIGNAL_VOCAL_THRESHOLD = 0.21  # share of modulation energy at vibrato rates: chosen on bench_facts seeds 0-3

HOP_SECONDS = 0.02
MODULATION_FRAMES = 128  # 2.56 s of frames per vocal-modulation measurement
VOICE_BAND = (1000.0, 4000.0)  # the upper harmonics, where vibrato moves them furthest
VIBRATO_BAND = (5.0, 7.5)
MODULATION_BAND = (1.0, 20.0)
GATE_DB = -60.0  # frames quieter than this (dBFS) do not count towards loudness


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class, 0 = C
    mode: str  # "major" | "minor"
    confidence: float  # the best profile correlation's margin over the runner-up's, 0..1 (0: a toss-up)

    @property
    def name(self) -> str:
        return f"{PITCH_CLASSES[self.tonic]} {self.mode}"

    @property
    def camelot(self) -> str:
        return camelot(self.tonic, self.mode)


def camelot(tonic: int, mode: str) -> str:
    """The Camelot-wheel code of a key: C major '8B', A minor '8A', G major '9B'."""
    if mode == "minor":
        tonic = (tonic + 3) % 12  # a minor key shares its number with its relative major
    return f"{(7 * tonic + 7) % 12 + 1}{'B' if mode == 'major' else 'A'}"


def parse_key(text: str) -> tuple:
    """(tonic, mode) from 'C major', 'A minor', 'F# minor', 'Bb major', 'Am', 'C', or a Camelot code '8A'."""
    text = text.strip()
    if text[:-1].isdigit() and text[-1:].upper() in ("A", "B"):
        number, letter = int(text[:-1]), text[-1].upper()
        if not 1 <= number <= 12:
            raise ValueError(f"not a Camelot code: {text!r}")
        mode = "major" if letter == "B" else "minor"
        tonic = next(t for t in range(12) if camelot(t, mode) == f"{number}{letter}")
        return tonic, mode
    parts = text.replace("-", " ").split()
    head = parts[0] if parts else ""
    mode = "major"
    if len(parts) > 1:
        mode = {"major": "major", "maj": "major", "minor": "minor", "min": "minor"}.get(parts[1].lower(), "")
    elif head.endswith("m") and len(head) > 1:
        head, mode = head[:-1], "minor"
    flats = {"Db": "C#", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb", "Cb": "B", "E#": "F", "Fb": "E", "B#": "C"}
    head = head[:1].upper() + head[1:]
    head = flats.get(head, head)
    if head not in PITCH_CLASSES or not mode:
        raise ValueError(f"not a key: {text!r}")
    return PITCH_CLASSES.index(head), mode


def compatible_keys(tonic: int, mode: str) -> list:
    """The key and its Camelot neighbours, [(tonic, mode)]: itself, its relative, a fifth up and down."""
    step = 7  # a fifth, in semitones: one step round the wheel
    return [
        (tonic, mode),
        ((tonic + 9) % 12, "minor") if mode == "major" else ((tonic + 3) % 12, "major"),
        ((tonic + step) % 12, mode),
        ((tonic - step) % 12, mode),
    ]


KEY_NAMES = tuple(f"{tonic} {mode}" for mode in ("major", "minor") for tonic in PITCH_CLASSES)
VOCALS = ("vocal", "instrumental")


def compatible_camelots(keys) -> list:
    """The Camelot codes of the keys that mix with any of ``keys`` (names or codes, see ``parse_key``): each
    key, its relative, a fifth up and down. A text that names no key is kept as it is (it matches no track)."""
    codes = []
    for text in keys:
        try:
            codes += [camelot(*key) for key in compatible_keys(*parse_key(text))]
        except ValueError:
            codes.append(text)
    return list(dict.fromkeys(codes))


def track_fields(facts: "Facts") -> dict:
    """What a catalog Track stores of ``facts`` (its filter fields: index/filters.py)."""
    return {
        "key": facts.key.name if facts.key else "",
        "camelot": facts.key.camelot if facts.key else "",
        "vocals": "vocal" if facts.vocal else "instrumental",
        "energy": round(facts.energy, 3),
    }


def estimate_key(chroma: np.ndarray) -> Optional[Key]:
    """The key of a 12-bin chroma profile (C first); None when it holds no pitch at all."""
    chroma = np.asarray(chroma, dtype=np.float64)
    if chroma.sum() <= 1e-9 or np.ptp(chroma) <= 1e-9 * chroma.max():
        return None
    scores = []
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            scores.append((np.corrcoef(chroma, np.roll(profile, tonic))[0, 1], tonic, mode))
    scores.sort(reverse=True)
    (best, tonic, mode), runner_up = scores[0], scores[1][0]
    return Key(tonic, mode, round(float(max(0.0, best - runner_up)), 4))


def vocals_from_tags(tags) -> Optional[float]:
    """A 0..1 vocal score from an embedder's AudioSet tags [(label, score)]: the strongest vocal class's score
    (0 when none is among the tags). None when the embedder returns no tags (then use the signal's estimate)."""
    if not tags:
        return None
    return max((float(score) for label, score in tags if label in VOCAL_LABELS), default=0.0)


@dataclass
class Facts:
    key: Optional[Key]
    vocal_score: float  # 0..1, from the tags when given, else from the signal
    vocal: bool
    energy: float  # 0..1
    loudness: float  # 0..1 parts of the energy
    brightness: float
    activity: float

    def as_dict(self) -> dict:
        return {
            "key": self.key.name if self.key else None,
            "camelot": self.key.camelot if self.key else None,
            "key_confidence": self.key.confidence if self.key else None,
            "vocal": self.vocal,
            "vocal_score": round(self.vocal_score, 4),
            "energy": round(self.energy, 4),
        }


def chroma_filters(sample_rate: int, n_fft: int, low: float = 55.0, high: float = 2000.0) -> np.ndarray:
    """(1 + n_fft // 2, 12) weights from FFT bins to pitch classes (C first): each bin between ``low`` and ``high``
    (A1 to B6: the bass to the melody, few upper harmonics) shared between its two nearest semitones."""
    frequencies = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    weights = np.zeros((len(frequencies), 12), np.float32)
    used = np.flatnonzero((frequencies >= low) & (frequencies <= min(high, sample_rate / 2)))
    semitones = 12 * np.log2(frequencies[used] / 440.0) + 9  # 0 = a C
    below = np.floor(semitones)
    fraction = semitones - below
    weights[used, below.astype(int) % 12] += 1 - fraction
    weights[used, (below.astype(int) + 1) % 12] += fraction
    return weights


def _band(frequencies, low, high):
    return np.flatnonzero((frequencies >= low) & (frequencies < high))


class _Framer:
    """Hann-windowed power spectra of frames that continue exactly across blocks."""

    def __init__(self, n_fft: int, hop: int):
        self.n_fft, self.hop = n_fft, max(hop, 1)
        self.window = np.hanning(n_fft).astype(np.float32)
        self.scale = 2 / (n_fft * float(np.sum(self.window**2)))  # power sum to the frame's mean square
        self.rest = np.zeros(0, dtype=np.float32)

    def feed(self, block: np.ndarray):
        """(power (n, 1 + n_fft // 2), mean square (n,)) of the frames this block completes."""
        import scipy.fft

        x = np.concatenate([self.rest, block])
        if len(x) < self.n_fft:
            self.rest = x
            return np.zeros((0, self.n_fft // 2 + 1), np.float32), np.zeros(0)
        n = 1 + (len(x) - self.n_fft) // self.hop
        frames = np.lib.stride_tricks.sliding_window_view(x[: (n - 1) * self.hop + self.n_fft], self.n_fft)
        self.rest = x[n * self.hop :]
        spectrum = scipy.fft.rfft(frames[:: self.hop] * self.window, axis=1)  # complex64
        power = spectrum.real**2 + spectrum.imag**2
        return power, power.sum(axis=1, dtype=np.float64) * self.scale


class MusicFacts:
    """Key, vocals and energy of a track whose mono blocks stream through ``tap`` once.

    Memory is a few KB plus one 2.5 s buffer of 300 Hz-3 kHz spectra, however long the track."""

    N_MELS = 40

    def __init__(self, sample_rate: int):
        self.sample_rate = int(sample_rate)
        # ~90 ms frames every 20 ms for energy and vocals; ~370 ms frames every 93 ms for the chroma, whose
        # low notes need the frequency resolution (a semitone at 65 Hz is 4 Hz).
        short, long = (1 << int(np.ceil(np.log2(seconds * sample_rate))) for seconds in (0.09, 0.37))
        self._short = _Framer(short, int(round(HOP_SECONDS * sample_rate)))
        self._long = _Framer(long, short)
        self._frequencies = np.fft.rfftfreq(self._short.n_fft, 1 / sample_rate)
        self._mel = mel_filters(sample_rate, self._short.n_fft, self.N_MELS, min(8000.0, sample_rate / 2))
        self._voice = _band(self._frequencies, *VOICE_BAND)
        self._chroma = chroma_filters(sample_rate, self._long.n_fft)
        self.chroma = np.zeros(12)
        self._frames = 0
        self._gated_power = 0.0
        self._gated_frames = 0
        self._centroid_weighted = 0.0
        self._centroid_weight = 0.0
        self._flux = 0.0
        self._last_logmel = None
        self._voice_buffer = []
        self._vibrato = 0.0  # modulation energy at vibrato rates, summed over measurements
        self._modulation = 0.0  # at 1-20 Hz

    def tap(self, blocks: Iterable[np.ndarray]):
        for block in blocks:
            self.add(np.asarray(block, dtype=np.float32))
            yield block

    def add(self, block: np.ndarray) -> None:
        power, mean_square = self._long.feed(block)
        loud = 10 * np.log10(np.maximum(mean_square, 1e-12)) > GATE_DB
        self.chroma += np.sqrt(power[loud] @ self._chroma).sum(axis=0)

        power, mean_square = self._short.feed(block)
        if not len(power):
            return
        self._frames += len(power)
        total = power.sum(axis=1)
        loud = 10 * np.log10(np.maximum(mean_square, 1e-12)) > GATE_DB
        self._gated_power += float(mean_square[loud].sum())
        self._gated_frames += int(loud.sum())
        self._centroid_weighted += float((power[loud] @ self._frequencies).sum())
        self._centroid_weight += float(total[loud].sum())

        logmel = 10 * np.log10(np.maximum(power @ self._mel, 1e-10))
        previous = logmel[:1] if self._last_logmel is None else self._last_logmel
        self._last_logmel = logmel[-1:]
        rise = np.maximum(np.diff(logmel, axis=0, prepend=previous), 0).mean(axis=1)
        self._flux += float(rise[loud].sum())

        self._voice_buffer.append(np.log(power[:, self._voice] + 1e-9))
        if sum(len(b) for b in self._voice_buffer) >= MODULATION_FRAMES:
            voice = np.concatenate(self._voice_buffer)
            whole = len(voice) // MODULATION_FRAMES * MODULATION_FRAMES
            for chunk in voice[:whole].reshape(-1, MODULATION_FRAMES, voice.shape[1]):
                self._add_modulation(chunk)
            self._voice_buffer = [voice[whole:]]

    def _add_modulation(self, chunk: np.ndarray) -> None:
        """Per band of a (frames, bands) log-spectrum: how much it moves at vibrato rates, apart from the rest."""
        if chunk.max() < np.log(1e-6):  # silence
            return
        chunk = chunk - chunk.mean(axis=1, keepdims=True)  # what moves every band at once (drums, dynamics)
        chunk = chunk - chunk.mean(axis=0, keepdims=True)
        modulation = np.abs(np.fft.rfft(chunk * np.hanning(len(chunk))[:, None], axis=0)) ** 2
        rates = np.fft.rfftfreq(len(chunk), HOP_SECONDS)
        self._vibrato += float(modulation[_band(rates, *VIBRATO_BAND)].sum())
        self._modulation += float(modulation[_band(rates, *MODULATION_BAND)].sum())

    def finish(self, tags=None) -> Facts:
        key = estimate_key(self.chroma) if self._frames else None
        signal_score = self._vibrato / self._modulation if self._modulation > 0 else 0.0
        tag_score = vocals_from_tags(tags)
        if tag_score is None:
            vocal_score, vocal = signal_score, signal_score >= SIGNAL_VOCAL_THRESHOLD
        else:
            vocal_score, vocal = tag_score, tag_score >= TAG_VOCAL_THRESHOLD
        if self._gated_frames:
            db = 10 * np.log10(max(self._gated_power / self._gated_frames, 1e-12))
            loudness = float(np.clip((db + 40) / 35, 0, 1))
            centroid = self._centroid_weighted / max(self._centroid_weight, 1e-12)
            brightness = float(np.clip(np.log2(max(centroid, 1.0) / 250) / 4, 0, 1))
            activity = float(np.clip(self._flux / self._gated_frames / 3.0, 0, 1))
        else:
            loudness = brightness = activity = 0.0
        energy = (loudness + brightness + activity) / 3
        return Facts(key, float(vocal_score), bool(vocal), float(energy), loudness, brightness, activity)


def analyse(signal: np.ndarray, sample_rate: int, tags=None) -> Facts:
    """The facts of a whole signal in memory (short clips, tests); ingest streams through ``MusicFacts.tap``."""
    facts = MusicFacts(sample_rate)
    facts.add(np.asarray(signal, dtype=np.float32))
    return facts.finish(tags)
