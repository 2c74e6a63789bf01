import shutil
import subprocess
import wave

import numpy as np
import pytest

import audiogen
from audiofind import audio
from audiofind.audio import Analysis, AudioError, load, prefetch, probe, stream
from audiofind.config import DEFAULTS

SR = 32000
FORMATS = ["wav", "flac", "ogg", "mp3", "opus", "m4a"]


@pytest.fixture(scope="module")
def clip():
    return audiogen.music(6.0, SR, seed=1)


def _write(folder, fmt, signal, rate=SR):
    if fmt == "opus":  # Opus only exists at 48 kHz and below
        signal = audio_resample(signal, rate, 48000)
        rate = 48000
    path = audiogen.write(folder / f"clip.{fmt}", signal, rate)
    if path is None:
        pytest.skip(f"{fmt}: ffmpeg is not installed")
    return path, rate


def audio_resample(x, rate_in, rate_out):
    import soxr

    return soxr.resample(x, rate_in, rate_out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_to_mono_at_the_requested_rate(tmp_path, clip, fmt):
    stereo = np.stack([clip, 0.5 * clip], axis=1)
    path, rate = _write(tmp_path, fmt, stereo)

    info = probe(path, DEFAULTS)
    assert info.duration == pytest.approx(6.0, abs=0.1)
    assert info.sample_rate == rate
    assert info.channels == 2
    assert info.size == path.stat().st_size

    signal = load(path, 22050)
    assert signal.ndim == 1 and signal.dtype == np.float32
    assert len(signal) / 22050 == pytest.approx(6.0, abs=0.1)
    # Mono is the mean of the channels: 0.75 of the original, lossy codecs allowing some error.
    reference = audio_resample(0.75 * clip, SR, 22050)
    n = min(len(reference), len(signal))
    lag = int(np.argmax(np.correlate(signal[:22050], reference[:2000], mode="valid")))  # codec delay
    m = n - lag
    error = np.sqrt(np.mean((signal[lag : lag + m] - reference[:m]) ** 2)) / np.sqrt(np.mean(reference**2))
    assert error < (0.02 if fmt in ("wav", "flac") else 0.6)
    assert np.corrcoef(signal[lag : lag + m], reference[:m])[0, 1] > 0.8


def test_resampling_keeps_a_tone_at_its_pitch(tmp_path):
    t = np.arange(3 * 44100) / 44100
    path = audiogen.write(tmp_path / "tone.wav", (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), 44100)
    signal = load(path, 16000)
    assert len(signal) == pytest.approx(48000, abs=20)
    spectrum = np.abs(np.fft.rfft(signal))
    assert np.argmax(spectrum) * 16000 / len(signal) == pytest.approx(1000, abs=2)


def test_time_range_selects_the_right_seconds(tmp_path):
    # One second per value: second k holds the constant k / 10.
    signal = np.repeat(np.arange(10, dtype=np.float32) / 10, 8000)
    path = audiogen.write(tmp_path / "steps.wav", signal, 8000)
    part = load(path, 8000, start=3, end=5)
    assert len(part) == 16000
    assert np.allclose(part[:8000], 0.3, atol=1e-3) and np.allclose(part[8000:], 0.4, atol=1e-3)
    assert len(load(path, 8000, start=8)) == 16000
    assert len(load(path, 8000, start=8, end=30)) == 16000  # an end past the file means its end


@pytest.mark.parametrize(
    "start,end,message",
    [(5, 3, "must be after start"), (12, None, "outside the file"), (-1, 2, "outside the file"), (6.5, 9, "outside")],
)
def test_bad_time_range_is_an_audio_error(tmp_path, clip, start, end, message):
    path = audiogen.write(tmp_path / "clip.wav", clip, SR)
    with pytest.raises(AudioError, match=message):
        load(path, SR, start=start, end=end)


def test_time_range_in_mp3(tmp_path, clip):
    path = audiogen.write(tmp_path / "clip.mp3", clip, SR)
    part = load(path, SR, start=2, end=4.5)
    assert len(part) / SR == pytest.approx(2.5, abs=0.05)


def test_long_wav_streams_in_bounded_blocks(tmp_path):
    # 10 minutes of 8 kHz audio, written without ever holding it whole.
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        chunk = (audiogen.music(60, 8000, seed=2) * 32767).astype("<i2").tobytes()
        for _ in range(10):
            w.writeframes(chunk)
    assert probe(path, DEFAULTS).duration == pytest.approx(600)
    sizes = [len(block) for block in stream(path, 16000, block_seconds=30.0)]
    assert sum(sizes) == pytest.approx(600 * 16000, abs=100)
    assert max(sizes) <= 31 * 16000
    assert len(sizes) >= 20


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda d: audiogen.text_file(d / "notes.mp3"), "is not an audio file"),
        (lambda d: audiogen.noise_file(d / "noise.wav", 50000), "is not an audio file"),
        (lambda d: audiogen.empty_file(d / "empty.flac"), "is empty"),
        (lambda d: d / "missing.wav", "file not found"),
    ],
)
def test_bad_files_name_the_file_and_the_reason(tmp_path, make, reason):
    path = make(tmp_path)
    for attempt in (lambda: probe(path, DEFAULTS), lambda: load(path, SR)):
        with pytest.raises(AudioError) as error:
            attempt()
        assert str(error.value).startswith(f"{path.name}: ")
        assert reason in str(error.value)
        assert error.value.path == str(path) and reason in error.value.reason


def test_truncated_wav_is_caught_before_decoding(tmp_path, clip):
    path = audiogen.truncated(tmp_path / "cut.wav", clip, SR, keep=0.5)
    with pytest.raises(AudioError, match=r"cut.wav: is truncated or corrupt: the header says 6.0 s, the file holds 3.0 s"):
        probe(path, DEFAULTS)
    with pytest.raises(AudioError, match="truncated"):
        load(path, SR)


@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_truncated_compressed_file_fails_while_streaming(tmp_path, fmt):
    path = audiogen.truncated(tmp_path / f"cut.{fmt}", audiogen.music(20, SR, seed=4), SR, keep=0.5)
    probe(path, DEFAULTS)  # the header still promises 20 s
    with pytest.raises(AudioError, match=rf"cut.{fmt}: is truncated or corrupt at \d+\.\d s"):
        load(path, SR)


def test_limits_on_size_and_duration(tmp_path, clip):
    path = audiogen.write(tmp_path / "clip.wav", clip, SR)
    with pytest.raises(AudioError, match=r"clip.wav: is 0.4 MB, the limit is 0.1 MB"):
        probe(path, {**DEFAULTS, "MAX_UPLOAD_BYTES": 2**20 // 10})
    with pytest.raises(AudioError, match=r"is 6.0 s long, the limit is 5.0 s"):
        probe(path, {**DEFAULTS, "MAX_DURATION": 5})
    with pytest.raises(AudioError, match=r"is 6.0 s long, the minimum is 10.0 s"):
        probe(path, {**DEFAULTS, "MIN_DURATION": 10})
    assert probe(path, DEFAULTS).duration == pytest.approx(6.0)


def test_size_message_in_megabytes():
    assert AudioError("x/y.mp3", "bad").reason == "bad"
    assert audio.megabytes(250 * 2**20) == "250 MB" and audio.megabytes(200 * 2**20) == "200 MB"


def test_m4a_without_ffmpeg_says_ffmpeg_is_needed(tmp_path, monkeypatch):
    # An MP4 container signature is enough to recognise the format.
    path = tmp_path / "song.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + bytes(2000))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(AudioError, match=r"song.m4a: is M4A/AAC audio; ffmpeg is needed"):
        probe(path, DEFAULTS)


@pytest.mark.parametrize("bpm", [90, 120])
def test_analysis_measures_tempo_within_two_percent(bpm):
    signal = audiogen.music(40, 22050, seed=5, bpm=bpm)
    analysis = Analysis(22050)
    blocks = analysis.tap(signal[i : i + 22050 * 7] for i in range(0, len(signal), 22050 * 7))
    assert sum(len(b) for b in blocks) == len(signal)  # blocks pass through untouched
    assert analysis.duration == pytest.approx(40)
    assert analysis.bpm == pytest.approx(bpm, rel=0.02)


def test_analysis_of_a_file_stream(tmp_path):
    path = audiogen.write(tmp_path / "track.mp3", audiogen.music(30, SR, seed=6, bpm=90), SR)
    analysis = Analysis(22050)
    for _ in analysis.tap(stream(path, 22050, block_seconds=4)):
        pass
    assert analysis.duration == pytest.approx(30, abs=0.1)
    assert analysis.bpm == pytest.approx(90, rel=0.02)


def test_silence_and_noise_have_no_tempo():
    for signal in (np.zeros(22050 * 20, np.float32), np.random.default_rng(0).standard_normal(22050 * 20) * 0.1):
        analysis = Analysis(22050)
        list(analysis.tap([signal.astype(np.float32)]))
        assert analysis.bpm is None
    assert Analysis(22050).envelope == [0.0] * 400


def test_envelope_follows_loudness():
    # 10 s loud, 10 s 40 dB quieter, 10 s silent.
    t = np.arange(10 * 8000) / 8000
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    signal = np.concatenate([tone, 0.01 * tone, np.zeros_like(tone)])
    analysis = Analysis(8000)
    list(analysis.tap(np.array_split(signal, 7)))
    envelope = analysis.envelope
    assert len(envelope) == 400 and all(0 <= v <= 1 for v in envelope)
    assert envelope[50] == pytest.approx(1.0, abs=0.01)
    assert envelope[200] == pytest.approx(1 - 40 / 60, abs=0.02)
    assert envelope[350] == 0.0


needs_ffmpeg = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg is not installed")


@needs_ffmpeg
def test_m4a_time_range_and_truncation(tmp_path, clip):
    path = audiogen.write(tmp_path / "clip.m4a", clip, SR)
    assert len(load(path, 16000, start=1, end=4.5)) / 16000 == pytest.approx(3.5, abs=0.05)
    cut = audiogen.truncated(tmp_path / "cut.m4a", clip, SR, keep=0.6)
    with pytest.raises(AudioError, match=r"cut.m4a: is truncated or corrupt"):
        probe(cut, DEFAULTS)


@pytest.mark.parametrize("ffmpeg", [True, False])
def test_random_bytes_are_not_audio_with_or_without_ffmpeg(tmp_path, monkeypatch, ffmpeg):
    if ffmpeg and not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    if not ffmpeg:
        monkeypatch.setattr(shutil, "which", lambda name: None)
    for n, ext in ((3000, "mp3"), (500_000, "mp3"), (500_000, "flac"), (50_000, "ogg")):
        path = audiogen.noise_file(tmp_path / f"random{n}.{ext}", n, seed=n)
        with pytest.raises(AudioError, match=rf"random{n}.{ext}: is not an audio file \("):
            probe(path, DEFAULTS)


@needs_ffmpeg
def test_vbr_mp3_without_xing_header_has_its_true_duration(tmp_path):
    # libsndfile guesses such a file's length from its first frame's bitrate, often far off.
    wav = audiogen.write(tmp_path / "source.wav", audiogen.music(30, 44100, seed=7), 44100)
    path = tmp_path / "vbr.mp3"
    command = ["ffmpeg", "-v", "error", "-i", str(wav), "-c:a", "libmp3lame", "-q:a", "7", "-write_xing", "0", str(path)]
    subprocess.run(command, check=True)
    assert probe(path, DEFAULTS).duration == pytest.approx(30, abs=0.1)
    assert len(load(path, 16000)) / 16000 == pytest.approx(30, abs=0.1)
    assert len(load(path, 16000, start=20)) / 16000 == pytest.approx(10, abs=0.1)


def test_vbr_mp3_without_xing_header_needs_ffmpeg_when_libsndfile_would_stop_early(tmp_path, monkeypatch):
    import soundfile

    path = tmp_path / "vbr.mp3"
    if shutil.which("ffmpeg"):
        wav = audiogen.write(tmp_path / "source.wav", audiogen.music(30, 44100, seed=7), 44100)
        command = ["ffmpeg", "-v", "error", "-i", str(wav), "-c:a", "libmp3lame", "-q:a", "7", "-write_xing", "0"]
        subprocess.run([*command, str(path)], check=True)
    if not path.exists() or soundfile.info(str(path)).duration > 29:
        pytest.skip("needs ffmpeg to make a header-less VBR MP3 that libsndfile under-estimates")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(AudioError, match=r"vbr.mp3: is a VBR MP3 without a length header, which needs ffmpeg"):
        probe(path, DEFAULTS)


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg makes the M4A")
def test_decoding_stops_at_the_duration_limit_whatever_the_header_says(tmp_path):
    lying = audiogen.lying_m4a(tmp_path / "lying.m4a", audiogen.music(40, 16000), 16000, claimed_seconds=4)
    config = dict(DEFAULTS, MAX_DURATION=10.0)
    assert probe(lying, config).duration == pytest.approx(4, abs=0.1)  # the header passes the probe ...
    with pytest.raises(AudioError, match="lying.m4a: is longer than its header says, and than the limit of 10"):
        for _ in stream(lying, SR, max_duration=10.0, block_seconds=2):  # ... the decoder stops at the limit
            pass


def test_rates_and_channel_counts_that_would_blow_up_a_block_are_refused(tmp_path):
    wide = tmp_path / "wide.wav"
    import soundfile as sf

    sf.write(wide, np.zeros((3840, 8), np.float32), 384000)
    with pytest.raises(AudioError, match="wide.wav: has a sample rate of 384000 Hz; the most is 192000 Hz"):
        probe(wide, DEFAULTS)
    many = tmp_path / "many.wav"
    sf.write(many, np.zeros((4800, 24), np.float32), 48000)
    with pytest.raises(AudioError, match="many.wav: has 24 channels; the most is 16"):
        probe(many, DEFAULTS)
    surround = tmp_path / "surround.wav"
    sf.write(surround, np.tile(audiogen.music(2, 48000)[:, None], (1, 6)), 48000, subtype="FLOAT")
    blocks = list(stream(surround, SR))
    assert sum(len(b) for b in blocks) == pytest.approx(2 * SR, abs=10)


def test_prefetch_yields_every_block_in_order_and_raises_the_producers_error_in_its_place():
    assert [int(b[0]) for b in prefetch(np.full(3, i, np.float32) for i in range(10))] == list(range(10))

    def failing():
        yield np.zeros(3, np.float32)
        raise AudioError("x.mp3", "is truncated or corrupt at 1.0 s")

    blocks = prefetch(failing())
    assert len(next(blocks)) == 3
    with pytest.raises(AudioError, match="truncated"):
        next(blocks)


def test_prefetch_stops_its_thread_and_closes_the_source_when_the_consumer_stops_early():
    import threading

    closed = threading.Event()

    def endless():
        try:
            while True:
                yield np.zeros(3, np.float32)
        finally:
            closed.set()

    blocks = prefetch(endless())
    next(blocks)
    blocks.close()
    assert closed.is_set()
    assert not any(t.name == "audiofind-decode" for t in threading.enumerate())
