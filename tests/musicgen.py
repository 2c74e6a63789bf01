"""Generated audio whose musical facts are known: chord progressions in a given key with several timbres,
drums and noise; formant-synthesised sung vowels with vibrato. Seeded, deterministic; for tests and
bench/bench_facts.py."""

import numpy as np

# Harmonic amplitudes (1st..8th) of each timbre.
TIMBRES = {
    "sine": [1.0],
    "organ": [1.0, 0.6, 0.0, 0.4, 0.0, 0.2, 0.0, 0.15],
    "saw": [1.0 / h for h in range(1, 9)],
    "square": [1.0 / h if h % 2 else 0.0 for h in range(1, 9)],
    "piano": [1.0, 0.5, 0.3, 0.2, 0.12, 0.08, 0.05, 0.03],
}
# Scale degrees (semitones above the tonic) of each triad, as roman numerals in major and (harmonic) minor.
MAJOR_TRIADS = {"I": (0, 4, 7), "ii": (2, 5, 9), "IV": (5, 9, 12), "V": (7, 11, 14), "vi": (9, 12, 16)}
MINOR_TRIADS = {"i": (0, 3, 7), "iv": (5, 8, 12), "V": (7, 11, 14), "VI": (8, 12, 15), "III": (3, 7, 10)}
PROGRESSIONS = {
    "major": [["I", "IV", "V", "I"], ["I", "vi", "IV", "V"], ["I", "V", "vi", "IV"], ["ii", "V", "I", "I"]],
    "minor": [["i", "iv", "V", "i"], ["i", "VI", "III", "V"], ["i", "iv", "VI", "V"], ["i", "III", "iv", "V"]],
}
# Formants (Hz) of sung vowels: F1, F2, F3.
VOWELS = {"a": (800, 1150, 2900), "e": (400, 1600, 2700), "i": (350, 1700, 2700), "o": (450, 800, 2830),
          "u": (325, 700, 2530)}


def _tone(f0, seconds, sample_rate, harmonics, decay=1.5):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    out = np.zeros_like(t)
    for h, a in enumerate(harmonics, 1):
        if a and f0 * h < sample_rate / 2:
            out += a * np.sin(2 * np.pi * f0 * h * t)
    envelope = np.minimum(1, t / 0.01) * np.exp(-t * decay) * np.minimum(1, (seconds - t) / 0.02)
    return out * envelope


def midi_hz(note):
    return 440.0 * 2 ** ((note - 69) / 12)


def progression(tonic: int, mode: str, seconds: float = 8.0, sample_rate: int = 22050, timbre: str = "piano",
                bpm: float = 100, seed: int = 0, drums: bool = False, noise_db: float = None,
                chords=None) -> np.ndarray:
    """A chord progression in a key (tonic pitch class, 0 = C; mode 'major'|'minor'): a bass on the chord root,
    the triad held for each bar, a melody of scale notes; optional drums and white noise (SNR in dB).
    ``chords``: roman numerals, one per bar (default: one of PROGRESSIONS, by seed)."""
    rng = np.random.default_rng([seed, tonic, mode == "minor"])
    triads = MAJOR_TRIADS if mode == "major" else MINOR_TRIADS
    chosen = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
    chords = chords or chosen
    scale = (0, 2, 4, 5, 7, 9, 11) if mode == "major" else (0, 2, 3, 5, 7, 8, 11)
    harmonics = TIMBRES[timbre]
    base = 48 + tonic  # the C below middle C and up
    n = int(seconds * sample_rate)
    out = np.zeros(n)
    bar = 4 * 60 / bpm
    for k in range(int(np.ceil(seconds / bar))):
        start = int(k * bar * sample_rate)
        chord = triads[chords[k % len(chords)]]
        parts = [(base - 12 + chord[0], 0.5)] + [(base + step, 0.3) for step in chord]
        for note, gain in parts:
            tone = gain * _tone(midi_hz(note), bar, sample_rate, harmonics, decay=0.8)
            m = min(len(tone), n - start)
            out[start : start + m] += tone[:m]
        beat = bar / 4
        for b in range(4):  # melody: a chord tone on beats 1 and 3, a scale note in between
            note = base + 12 + (chord[int(rng.integers(3))] if b % 2 == 0 else scale[int(rng.integers(7))])
            i = start + int(b * beat * sample_rate)
            tone = 0.35 * _tone(midi_hz(note), beat, sample_rate, harmonics, decay=3.0)
            m = min(len(tone), n - i)
            if m > 0:
                out[i : i + m] += tone[:m]
    if drums:
        out += drum_track(seconds, sample_rate, bpm, seed) * np.max(np.abs(out)) * 0.8
    if noise_db is not None:
        power = np.mean(out**2)
        out += rng.standard_normal(n) * np.sqrt(power / 10 ** (noise_db / 10))
    return (0.7 * out / max(np.max(np.abs(out)), 1e-9)).astype(np.float32)


def drum_track(seconds: float, sample_rate: int = 22050, bpm: float = 100, seed: int = 0) -> np.ndarray:
    """Kick on every beat, noise snare on 2 and 4, closed hi-hat on eighths; peak 1."""
    rng = np.random.default_rng(seed + 1000)
    n = int(seconds * sample_rate)
    out = np.zeros(n)
    beat = 60 / bpm
    t = np.arange(int(0.15 * sample_rate)) / sample_rate
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-t * 40)) * t) * np.exp(-t * 20)
    snare = rng.standard_normal(len(t)) * np.exp(-t * 30) * 0.6
    hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t * 120) * 0.25
    for k in range(int(seconds / beat * 2) + 1):
        i = int(k * beat / 2 * sample_rate)
        hits = [hat] + ([kick] if k % 2 == 0 else []) + ([snare] if k % 4 == 2 else [])
        for hit in hits:
            m = min(len(hit), n - i)
            if m > 0:
                out[i : i + m] += hit[:m]
    return out / max(np.max(np.abs(out)), 1e-9)


def sung(tonic: int, mode: str, seconds: float = 8.0, sample_rate: int = 22050, seed: int = 0,
         vibrato_hz: float = 5.5, vibrato_cents: float = 60.0, low: bool = False) -> np.ndarray:
    """A voice singing vowels on a melody in the key: a glottal pulse train (harmonics falling 12 dB/octave)
    with vibrato and a little pitch jitter, through each vowel's three formant resonances; peak 0.7."""
    import scipy.signal

    rng = np.random.default_rng([seed, 77, tonic])
    scale = (0, 2, 4, 5, 7, 9, 11) if mode == "major" else (0, 2, 3, 5, 7, 8, 11)
    n = int(seconds * sample_rate)
    out = np.zeros(n)
    t0 = 0.0
    while t0 < seconds:
        length = float(rng.choice([0.4, 0.6, 0.8, 1.2]))
        note = (45 if low else 57) + tonic + scale[int(rng.integers(7))]
        m = min(int(length * sample_rate), n - int(t0 * sample_rate))
        t = np.arange(m) / sample_rate
        rate = vibrato_hz * (1 + 0.1 * rng.standard_normal())
        depth = vibrato_cents / 1200 * np.minimum(1, t / 0.25)  # vibrato grows in after the onset, as sung
        f0 = midi_hz(note) * 2 ** (depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        source = sum(np.sin(h * phase) / h**2 for h in range(1, 40) if midi_hz(note) * h < min(5000, sample_rate / 2.2))
        voice = np.zeros(m)
        for formant, bandwidth in zip(VOWELS[rng.choice(list(VOWELS))], (80, 100, 120)):
            b, a = scipy.signal.iirpeak(formant, formant / bandwidth, fs=sample_rate)
            voice += scipy.signal.lfilter(b, a, source)
        envelope = np.minimum(1, t / 0.05) * np.minimum(1, (length - t) / 0.08).clip(0, 1)
        i = int(t0 * sample_rate)
        out[i : i + m] += voice * envelope
        t0 += length
    return (0.7 * out / max(np.max(np.abs(out)), 1e-9)).astype(np.float32)


def mix(*parts_and_gains_db) -> np.ndarray:
    """Sum of (signal, gain dB) pairs, trimmed to the shortest."""
    n = min(len(p) for p, _ in parts_and_gains_db)
    return np.sum([p[:n] * 10 ** (g / 20) for p, g in parts_and_gains_db], axis=0).astype(np.float32)
