"""Music-like test audio, synthesised (seeded, deterministic) and written in any supported format."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

_SOUNDFILE_FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def music(seconds: float, sample_rate: int = 32000, seed: int = 0, bpm: float = 120, style: int = None) -> np.ndarray:
    """A mono float32 signal that behaves like music: a seeded melody of harmonic notes over a chord,
    and a drum pattern (kick on every beat, a noise snare on beats 2 and 4) at ``bpm``. Distinct per seed.
    ``style``: pieces of one style share their timbre (an album of one band); by default each seed has its own."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    out = np.zeros(n, dtype=np.float64)
    beat = 60.0 / bpm

    # Timbre differs per seed (or per style): the harmonics' strengths.
    timbre = rng if style is None else np.random.default_rng([style, 7919])
    harmonics = timbre.uniform(0.1, 1.0, 6) / np.arange(1, 7)
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    root = 45 + int(rng.integers(0, 12))  # MIDI note of the key
    note_beats = float(rng.choice([0.5, 1.0]))
    note_len = note_beats * beat
    for k in range(int(np.ceil(seconds / note_len))):
        pitch = root + 12 + scale[rng.integers(0, 7)] + 12 * int(rng.integers(0, 2))
        _add_note(out, sample_rate, k * note_len, note_len, pitch, harmonics, 0.25)
    # A sustained chord per bar gives the harmony (chroma) something to hold on to.
    bar = 4 * beat
    for k in range(int(np.ceil(seconds / bar))):
        degree = int(rng.integers(0, 7))
        for step in (0, 2, 4):
            pitch = root + scale[(degree + step) % 7]
            _add_note(out, sample_rate, k * bar, bar, pitch, harmonics[::-1], 0.08)

    # Drums: a decaying low sine (kick) on each beat, a burst of noise (snare) on beats 2 and 4.
    kick_len = int(0.12 * sample_rate)
    kt = np.arange(kick_len) / sample_rate
    kick = np.sin(2 * np.pi * (60 + 60 * np.exp(-kt * 40)) * kt) * np.exp(-kt * 25)
    snare = rng.standard_normal(kick_len) * np.exp(-kt * 35) * 0.5
    for k in range(int(seconds / beat) + 1):
        i = int(round(k * beat * sample_rate))
        for hit, gain in ((kick, 0.6), (snare, 0.4 if k % 2 else 0.0)):
            m = min(len(hit), n - i)
            if m > 0 and gain:
                out[i : i + m] += gain * hit[:m]
    peak = np.max(np.abs(out)) if n else 1.0
    return (0.8 * out / max(peak, 1e-9)).astype(np.float32)


def _add_note(out, sample_rate, start, length, pitch, harmonics, gain):
    i, m = int(start * sample_rate), int(length * sample_rate)
    m = min(m, len(out) - i)
    if m <= 0:
        return
    t = np.arange(m) / sample_rate
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    tone = sum(a * np.sin(2 * np.pi * f0 * (h + 1) * t) for h, a in enumerate(harmonics) if f0 * (h + 1) < sample_rate / 2)
    attack = np.minimum(1.0, t / 0.01)
    out[i : i + m] += gain * tone * attack * np.exp(-t * 2.0)


def write(path, signal: np.ndarray, sample_rate: int, format: str = None):
    """Write ``signal`` to ``path`` in ``format`` (default: the extension): wav, flac, ogg, opus, mp3 with
    soundfile; m4a with ffmpeg. Returns the path, or None when the format cannot be written here
    (m4a without ffmpeg)."""
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt in ("m4a", "aac"):
        ffmpeg = shutil.which("ffmpeg")
        if not ffmpeg:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "in.wav"
            sf.write(wav, signal, sample_rate, subtype="PCM_16")
            subprocess.run(
                [ffmpeg, "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", "-b:a", "128k", str(path)], check=True
            )
        return path
    container, subtype = _SOUNDFILE_FORMATS[fmt]
    if fmt == "opus" and sample_rate not in (8000, 12000, 16000, 24000, 48000):
        raise ValueError("Opus needs 8, 12, 16, 24 or 48 kHz")
    sf.write(path, signal, sample_rate, format=container, subtype=subtype)
    return path


def noise_file(path, n_bytes: int = 4096, seed: int = 0):
    """A file of random bytes (give it an audio extension to make a fake audio file)."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes())
    return path


def text_file(path, text: str = "This is not audio.\n" * 50):
    path = Path(path)
    path.write_text(text)
    return path


def empty_file(path):
    path = Path(path)
    path.write_bytes(b"")
    return path


def truncated(path, signal: np.ndarray, sample_rate: int, keep: float = 0.5, format: str = None):
    """Write ``signal`` then cut the file to ``keep`` of its bytes (a WAV or FLAC whose header promises more)."""
    path = write(path, signal, sample_rate, format)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def lying_m4a(path, signal: np.ndarray, sample_rate: int, claimed_seconds: float):
    """An M4A whose container header (mvhd, mdhd) says ``claimed_seconds`` while it holds all of ``signal``;
    None without ffmpeg."""
    path = write(path, signal, sample_rate, "m4a")
    if path is None:
        return None
    data = bytearray(path.read_bytes())
    for atom in (b"mvhd", b"mdhd"):
        at = data.find(atom)
        while at >= 0:
            if data[at + 4] == 0:  # version 0: creation, modification, timescale, duration (4 bytes each)
                timescale = int.from_bytes(data[at + 16:at + 20], "big")
                data[at + 20:at + 24] = int(claimed_seconds * timescale).to_bytes(4, "big")
            at = data.find(atom, at + 4)
    path.write_bytes(bytes(data))
    return path


def wav_claiming(path, claimed_bytes: int, seconds: float = 1.0, sample_rate: int = 16000):
    """A 16-bit mono WAV whose header announces ``claimed_bytes`` of samples but holds ``seconds`` of them."""
    samples = (music(seconds, sample_rate) * 32767).astype("<i2").tobytes()
    header = (b"RIFF" + (36 + claimed_bytes).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
              + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + sample_rate.to_bytes(4, "little")
              + (2 * sample_rate).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
              + b"data" + claimed_bytes.to_bytes(4, "little"))
    Path(path).write_bytes(header + samples)
    return Path(path)
