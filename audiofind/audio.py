"""Decoding, validation and one-pass analysis of audio files.

Every file is read block by block (``stream``), mixed to mono and resampled with soxr's
streaming resampler, so a long file never sits decoded in memory. libsndfile (through
soundfile) reads WAV, FLAC, OGG/Vorbis, OGG/Opus and MP3; anything else (M4A/AAC, …) is
decoded by the ``ffmpeg`` binary when it is on PATH.
"""

import json
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import soundfile as sf

from audiofind.upload_policy import FFMPEG_ONLY, TooLarge, check_size, megabytes  # noqa: F401 (megabytes: for importers)


class AudioError(ValueError):
    """A file that cannot be used; ``str()`` names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{Path(self.path).name}: {reason}")


@dataclass
class AudioInfo:
    path: str
    duration: float  # seconds
    sample_rate: int
    channels: int
    format: str  # "WAV", "FLAC", "OGG", "MP3", "M4A", …
    size: int  # bytes


# The extension of each format the probe names (AudioInfo.format); the containers libsndfile cannot read are
# upload_policy's FFMPEG_ONLY, named in the error when ffmpeg is missing.
FORMAT_SUFFIXES = {"WAV": ".wav", "FLAC": ".flac", "OGG": ".ogg", "MP3": ".mp3", "AIFF": ".aiff", "M4A": ".m4a"}
# A block of decoded audio holds rate x channels x seconds samples: the probe refuses what would not fit.
MAX_SAMPLE_RATE = 192000
MAX_CHANNELS = 16
BLOCK_SAMPLES = 30 * 48000 * 2  # samples (all channels) per decoded block: 11 MB of float32


def _duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _ffmpeg_kind(path: Path) -> Optional[str]:
    """The name of a format only ffmpeg can read, from the extension or the MP4 'ftyp' signature."""
    with open(path, "rb") as f:
        head = f.read(12)
    if head[4:8] == b"ftyp":
        return "M4A/AAC"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:  # ADTS AAC sync word
        return "AAC"
    return FFMPEG_ONLY.get(path.suffix.lower())


def _has_mp4_signature(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8)[4:8] == b"ftyp"


# MPEG audio frame header tables: kbit/s by [version is MPEG-1][layer] and bitrate index, Hz by version.
_MPEG_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_BITRATES[(False, 3)] = _MPEG_BITRATES[(False, 2)]
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frames(path: Path) -> Optional[int]:
    """The exact number of samples of an MP3 without a Xing/Info/VBRI header, by walking its frame headers.

    Without such a header libsndfile estimates the length from the file size and the first frame's
    bitrate, which for a VBR file can be several times the truth. None when a header is present (then
    libsndfile's count is exact) or the file does not parse.
    """
    import mmap

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos = 0
        if data[:3] == b"ID3" and len(data) >= 10:
            size = data[6] << 21 | data[7] << 14 | data[8] << 7 | data[9]
            pos = 10 + size + (10 if data[5] & 0x10 else 0)
        samples = frames = 0
        end = len(data) - 4
        while pos <= end:
            b1, b2 = data[pos + 1], data[pos + 2]
            if data[pos] != 0xFF or b1 & 0xE0 != 0xE0:
                if frames:  # trailing tags (ID3v1, APE) or junk after the audio
                    break
                pos += 1
                continue
            version, layer = (b1 >> 3) & 3, 4 - ((b1 >> 1) & 3)
            bitrate_index, rate_index = b2 >> 4, (b2 >> 2) & 3
            if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
                if frames:
                    break
                pos += 1
                continue
            mpeg1 = version == 3
            bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index] * 1000
            rate = _MPEG_RATES[version][rate_index]
            padding = (b2 >> 1) & 1
            if layer == 1:
                length, count = (12 * bitrate // rate + padding) * 4, 384
            else:
                count = 1152 if layer == 2 or mpeg1 else 576
                length = count // 8 * bitrate // rate + padding
            if frames == 0 and any(tag in data[pos : pos + min(length, 200)] for tag in (b"Xing", b"Info", b"VBRI")):
                return None
            samples += count
            frames += 1
            pos += length
        return samples or None


def _wav_truncation(path: Path) -> Optional[str]:
    """libsndfile silently shortens a WAV whose data chunk runs past the end of the file; the header knows better."""
    rate = align = 0
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(16)
                rate, align = struct.unpack("<I", fmt[4:8])[0], struct.unpack("<H", fmt[12:14])[0]
                f.seek(size + (size & 1) - 16, 1)
                continue
            if cid == b"data":
                present = path.stat().st_size - f.tell()
                if size == 0xFFFFFFFF or present >= size or not rate or not align:
                    return None
                return (
                    f"is truncated or corrupt: the header says {_duration_text(size / align / rate)}, "
                    f"the file holds {_duration_text(present / align / rate)}"
                )
            f.seek(size + (size & 1), 1)


def _ffprobe(path: Path) -> AudioInfo:
    ffprobe = shutil.which("ffprobe")
    if not ffprobe:
        raise AudioError(path, "ffprobe is missing (it comes with ffmpeg)")
    done = subprocess.run(
        [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        detail = _last_line(done.stderr).replace(f"{path}: ", "") or "ffprobe cannot read it"
        if _ffmpeg_kind(path) == "M4A/AAC" and _has_mp4_signature(path):
            raise AudioError(path, f"is truncated or corrupt ({detail})")
        raise AudioError(path, f"is not an audio file (format not recognised: {detail})")
    data = json.loads(done.stdout or "{}")
    streams = [s for s in data.get("streams", []) if s.get("codec_type") == "audio"]
    if not streams:
        raise AudioError(path, "is not an audio file (no audio stream)")
    stream, fmt = streams[0], data.get("format", {})
    duration = float(stream.get("duration") or fmt.get("duration") or 0)
    if duration <= 0 or int(stream.get("sample_rate") or 0) <= 0:
        raise AudioError(path, "is not an audio file (no decodable audio)")
    name = fmt.get("format_name", "")
    label = "M4A" if "mp4" in name or "m4a" in name else name.split(",")[0].upper()
    return AudioInfo(str(path), duration, int(stream.get("sample_rate", 0)), int(stream.get("channels", 1)), label, 0)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _open_info(path: Path) -> tuple[AudioInfo, bool]:
    """(AudioInfo without size, True when libsndfile reads it / False when ffmpeg must)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        kind = _ffmpeg_kind(path)
        if shutil.which("ffmpeg"):
            return _ffprobe(path), False
        if kind:
            raise AudioError(path, f"is {kind} audio; ffmpeg is needed to decode it (install ffmpeg)") from None
        raise AudioError(path, "is not an audio file (format not recognised)") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(path, "is not an audio file (no audio frames)")
    frames, native = info.frames, True
    if info.format == "MP3":
        frames = _mp3_frames(path) or frames
        if frames > info.frames + info.samplerate // 2:
            # libsndfile stops reading at its (under)estimate: only ffmpeg reads such a file to its end.
            if not shutil.which("ffmpeg"):
                raise AudioError(
                    path, "is a VBR MP3 without a length header, which needs ffmpeg to decode (install ffmpeg)"
                )
            native = False
    return AudioInfo(str(path), frames / info.samplerate, info.samplerate, info.channels, info.format, 0), native


def probe(path, config) -> AudioInfo:
    """Validate a file before any decoding: exists, not empty, within the size and duration limits, audio."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "is not a file")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(path, "is empty (0 bytes)")
    try:
        check_size(path.name, size, config)
    except TooLarge as error:
        raise AudioError(path, error.reason) from None
    info, native = _open_info(path)
    info.size = size
    if native and info.format == "WAV":
        reason = _wav_truncation(path)
        if reason:
            raise AudioError(path, reason)
    if info.sample_rate > MAX_SAMPLE_RATE:
        raise AudioError(path, f"has a sample rate of {info.sample_rate} Hz; the most is {MAX_SAMPLE_RATE} Hz")
    if info.channels > MAX_CHANNELS:
        raise AudioError(path, f"has {info.channels} channels; the most is {MAX_CHANNELS}")
    longest, shortest = float(config["MAX_DURATION"]), float(config["MIN_DURATION"])
    if info.duration > longest:
        raise AudioError(path, f"is {_duration_text(info.duration)} long, the limit is {_duration_text(longest)}")
    if info.duration < shortest:
        raise AudioError(path, f"is {_duration_text(info.duration)} long, the minimum is {_duration_text(shortest)}")
    return info


def _check_range(path, duration: float, start, end) -> tuple[float, Optional[float]]:
    start = 0.0 if start is None else float(start)
    if start < 0 or start >= duration:
        raise AudioError(path, f"start {start:.1f} s is outside the file (0 to {duration:.1f} s)")
    if end is not None:
        end = float(end)
        if end <= start:
            raise AudioError(path, f"end {end:.1f} s must be after start {start:.1f} s")
        end = min(end, duration)  # "up to 30 s" of a 25 s file means to its end
    return start, end


class _Resampler:
    def __init__(self, rate_in: int, rate_out: int):
        self.stream = None
        if rate_in != rate_out:
            import soxr

            self.stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self.stream is None:
            return x
        return self.stream.resample_chunk(x, last=last)


def stream(path, sample_rate: int, *, start=None, end=None, block_seconds: float = 30.0,
           max_duration: Optional[float] = None) -> Iterator[np.ndarray]:
    """Mono float32 blocks at ``sample_rate`` (about ``block_seconds`` each), optionally of [start, end) seconds.

    ``max_duration``: fail (AudioError) once more than that many seconds have decoded, whatever the header said
    (a container may claim 3 s and hold hours)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "is empty (0 bytes)")
    info, native = _open_info(path)
    start, end = _check_range(path, info.duration, start, end)
    # Fewer seconds per block for many channels or a high rate, so a block stays BLOCK_SAMPLES at most.
    block_seconds = min(block_seconds, BLOCK_SAMPLES / max(1, info.sample_rate * info.channels))
    decode = _stream_sndfile if native else _stream_ffmpeg
    most = None if max_duration is None else int((float(max_duration) + 1.0) * sample_rate)
    done = 0
    for block in decode(path, info, sample_rate, start, end, block_seconds):
        done += len(block)
        if most is not None and done > most:
            raise AudioError(path, f"is longer than its header says, and than the limit of {_duration_text(max_duration)}")
        yield block


def _stream_sndfile(path, info, sample_rate, start, end, block_seconds):
    if info.format == "WAV":
        reason = _wav_truncation(path)
        if reason:
            raise AudioError(path, reason)
    rate = info.sample_rate
    first = int(round(start * rate))
    total = int(round(info.duration * rate))
    last = total if end is None else min(total, int(round(end * rate)))
    block = max(int(block_seconds * rate), 1)
    resample = _Resampler(rate, sample_rate)
    done = first
    try:
        with sf.SoundFile(str(path)) as f:
            if first:
                f.seek(first)
            while done < last:
                data = f.read(min(block, last - done), dtype="float32", always_2d=True)
                if len(data) == 0:
                    break
                done += len(data)
                out = resample(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0])
                if len(out):
                    yield out
    except sf.LibsndfileError as e:
        raise AudioError(path, f"is truncated or corrupt at {done / rate:.1f} s ({e.error_string})") from None
    # Compressed formats' frame counts are estimates (from a Xing header, a granule position): allow slack.
    slack = 0 if info.format in ("WAV", "FLAC", "AIFF", "W64", "RF64") else int(0.5 * rate)
    if done < last - slack:
        raise AudioError(path, f"is truncated or corrupt at {done / rate:.1f} s (expected {last / rate:.1f} s)")
    tail = resample(np.zeros(0, dtype=np.float32), last=True)
    if len(tail):
        yield tail


def _stream_ffmpeg(path, info, sample_rate, start, end, block_seconds):
    command = [shutil.which("ffmpeg") or "ffmpeg", "-v", "error", "-nostdin"]
    if start:
        command += ["-ss", f"{start:.3f}"]
    command += ["-i", str(path)]
    if end is not None:
        command += ["-t", f"{end - start:.3f}"]
    command += ["-vn", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-"]
    block_bytes = max(int(block_seconds * sample_rate), 1) * 4
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    samples = 0
    try:
        while True:
            chunk = process.stdout.read(block_bytes)
            if not chunk:
                break
            usable = len(chunk) - len(chunk) % 4
            samples += usable // 4
            yield np.frombuffer(chunk[:usable], dtype="<f4").astype(np.float32)
        error = process.stderr.read().decode(errors="replace")
        if process.wait() != 0:
            at = samples / sample_rate
            raise AudioError(path, f"is truncated or corrupt at {at:.1f} s ({_last_line(error) or 'ffmpeg failed'})")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def prefetch(blocks, depth: int = 2) -> Iterator[np.ndarray]:
    """``blocks`` produced in a thread of their own, at most ``depth`` ahead of the consumer, so decoding runs
    while the caller computes on the previous block; an error in the producer is raised here, in its place."""
    import queue
    import threading

    ready = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce():
        try:
            for block in blocks:
                if not put((block, None)):
                    return
            put((end, None))
        except BaseException as exc:  # noqa: B902 - the consumer raises it
            put((end, exc))
        finally:
            getattr(blocks, "close", lambda: None)()

    thread = threading.Thread(target=produce, name="audiofind-decode", daemon=True)
    thread.start()
    try:
        while True:
            block, error = ready.get()
            if block is end:
                if error is not None:
                    raise error
                return
            yield block
    finally:
        stop.set()
        thread.join()


def load(path, sample_rate: int, *, start=None, end=None) -> np.ndarray:
    """The whole (selected) signal as one array: for short clips only."""
    blocks = list(stream(path, sample_rate, start=start, end=end))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)


def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmax: float) -> np.ndarray:
    """Triangular mel filters, (1 + n_fft // 2, n_mels) float32: librosa.filters.mel's default (Slaney's mel
    scale and area normalisation, fmin 0), without importing librosa (and scipy.signal with it)."""

    def hz_to_mel(hz):
        hz = np.asarray(hz, dtype=np.float64)
        return np.where(hz < 1000, 3 * hz / 200, 15 + np.log(np.maximum(hz, 1e-10) / 1000) * 27 / np.log(6.4))

    def mel_to_hz(mel):
        return np.where(mel < 15, 200 * mel / 3, 1000 * np.exp((mel - 15) * np.log(6.4) / 27))

    bins = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    rising, falling = -ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(rising, falling)) * (2 / (edges[2:] - edges[:-2]))[:, None]
    return np.ascontiguousarray(weights.T, dtype=np.float32)


class Analysis:
    """Measures a track while its blocks stream through once: duration, loudness envelope, tempo.

    Usage: ``blocks = analysis.tap(blocks)``; consume ``blocks``; then read ``duration``, ``envelope``, ``bpm``.
    """

    ENVELOPE_POINTS = 400
    ENVELOPE_HOP = 0.1  # seconds per RMS value
    ONSET_RATE = 100  # onset-envelope frames per second; parabolic interpolation refines the beat period
    ONSET_MELS = 40
    ONSET_FMAX = 8000

    def __init__(self, sample_rate: int):
        self.sample_rate = int(sample_rate)
        self.samples = 0
        self._rms_hop = max(int(self.ENVELOPE_HOP * sample_rate), 1)
        self._rms_rest = np.zeros(0, dtype=np.float32)
        self._rms = []
        self._hop = max(int(round(sample_rate / self.ONSET_RATE)), 1)
        self._n_fft = 1 << int(np.ceil(np.log2(0.03 * sample_rate)))  # 30-60 ms window
        self._onset_rest = np.zeros(0, dtype=np.float32)
        self._last_frame = None
        self._onsets = []
        mel = mel_filters(self.sample_rate, self._n_fft, self.ONSET_MELS, min(self.ONSET_FMAX, self.sample_rate / 2))
        used = int(np.flatnonzero(mel.any(axis=1))[-1]) + 1  # the FFT bins above fmax weigh nothing
        self._mel = mel[:used]
        self._window = np.hanning(self._n_fft).astype(np.float32)

    def tap(self, blocks):
        for block in blocks:
            self._add(np.asarray(block, dtype=np.float32))
            yield block

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate

    def _add(self, block: np.ndarray) -> None:
        self.samples += len(block)
        x = np.concatenate([self._rms_rest, block])
        n = len(x) // self._rms_hop
        if n:
            frames = x[: n * self._rms_hop].reshape(n, self._rms_hop)
            self._rms.append(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)))
        self._rms_rest = x[n * self._rms_hop :]
        self._add_onsets(block)

    def _add_onsets(self, block: np.ndarray) -> None:
        import scipy.fft

        # Frames continue exactly across blocks: keep the samples the next frame still needs.
        x = np.concatenate([self._onset_rest, block])
        if len(x) < self._n_fft:
            self._onset_rest = x
            return
        n = 1 + (len(x) - self._n_fft) // self._hop
        frames = np.lib.stride_tricks.sliding_window_view(x[: (n - 1) * self._hop + self._n_fft], self._n_fft)[
            :: self._hop
        ]
        self._onset_rest = x[n * self._hop :]
        spectrum = scipy.fft.rfft(frames * self._window, axis=1)[:, : len(self._mel)]  # complex64: numpy's is slower
        power = spectrum.real**2 + spectrum.imag**2
        logmel = 10 * np.log10(np.maximum(power @ self._mel, 1e-10))  # (n, 40), fixed reference
        previous = logmel[:1] if self._last_frame is None else self._last_frame
        self._last_frame = logmel[-1:]
        # Spectral flux (librosa's onset strength): mean positive log-mel rise per frame.
        flux = np.diff(logmel, axis=0, prepend=previous)
        self._onsets.append(np.maximum(flux, 0).mean(axis=1).astype(np.float32))

    @property
    def envelope(self) -> list:
        """Loudness over time: ENVELOPE_POINTS values 0..1 (dB scale, 60 dB range below the loudest point)."""
        rms = np.concatenate(self._rms) if self._rms else np.zeros(0)
        if len(self._rms_rest):
            rms = np.append(rms, np.sqrt(np.mean(self._rms_rest.astype(np.float64) ** 2)))
        if len(rms) == 0:
            return [0.0] * self.ENVELOPE_POINTS
        n = self.ENVELOPE_POINTS
        if len(rms) >= n:
            edges = np.linspace(0, len(rms), n + 1).astype(int)
            rms = np.maximum.reduceat(rms, edges[:-1])
        else:
            rms = np.interp(np.linspace(0, len(rms) - 1, n), np.arange(len(rms)), rms)
        if rms.max() < 1e-5:  # silence (-100 dBFS)
            return [0.0] * n
        db = 20 * np.log10(np.maximum(rms, 1e-10) / rms.max())
        return [round(float(v), 4) for v in np.clip(1 + db / 60, 0, 1)]

    @property
    def bpm(self) -> Optional[float]:
        """Tempo in beats per minute (0.1 resolution), or None when the track has no beat."""
        onset = np.concatenate(self._onsets) if self._onsets else np.zeros(0)
        rate = self.sample_rate / self._hop
        if len(onset) < 4 * rate or onset.max() < 0.5:  # too short, or no change above 0.5 dB: no onsets
            return None
        import scipy.fft

        onset = onset - onset.mean()
        max_lag = int(rate * 60 / 30)  # down to 30 BPM
        size = scipy.fft.next_fast_len(2 * len(onset) - 1, real=True)
        spectrum = scipy.fft.rfft(onset, n=size)
        ac = scipy.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=size)[: max_lag + 2]  # autocorrelation
        if ac[0] <= 0:
            return None
        ac = ac / ac[0]
        lags = np.arange(int(rate * 60 / 300), max_lag + 1)  # 300 .. 30 BPM
        tempi = 60 * rate / lags
        # librosa's tempo prior: log-normal around 120 BPM, one octave wide; it settles octave ambiguity.
        prior = np.exp(-0.5 * (np.log2(tempi / 120.0)) ** 2)
        score = np.maximum(ac[lags], 0) * prior
        best = int(np.argmax(score))
        # No periodicity worth calling a beat: noise reaches about 3-4 standard errors (1/sqrt(n)) by chance.
        if ac[lags[best]] < 0.02 + 4 / np.sqrt(len(onset)):
            return None
        lag = float(lags[best])
        if 0 < best < len(lags) - 1:  # parabolic interpolation for sub-frame precision
            a, b, c = ac[lags[best] - 1], ac[lags[best]], ac[lags[best] + 1]
            denominator = a - 2 * b + c
            if denominator < 0:
                lag += 0.5 * (a - c) / denominator
        return round(float(60 * rate / lag), 1)
