"""A trained network for measuring search quality: the aisfx sound-effects CNN as an audiofind embedder plugin.

``pip install --no-deps aisfx`` brings ``aisfx/models/checkpoint.pth`` (MIT licence, 25 MB): a 4-block CNN
(two 3x3 convolutions with batch norm and ReLU per block, 64-128-256-512 channels, 2x2 max pooling after the
first three) over a 96-band log-mel spectrogram at 44.1 kHz, trained on sound-effects libraries. Its embedding
is the mean over frequency, then the max over time, of the last block's 512 feature maps.

The Cnn14 checkpoint cannot be downloaded here and random weights carry no meaning, so the tests and
``bench/bench_quality.py`` use this network to see a trained embedder's geometry (all music close together).
Only the package's checkpoint file is read: aisfx's own modules pin old numpy/librosa and are not imported.

Window vectors: 10 s windows every 5 s (432 and 216 spectrogram frames), each window's power spectrum scaled
to one loudness (the network was trained on loudness-normalised audio; a per-window scale keeps it streaming),
then ``log10(1e4 x + 1) / 9.4578`` as aisfx's training spectrograms were.
"""

import importlib.util
from pathlib import Path
from typing import Iterable

import numpy as np

from audiofind.embedders.base import Embedder, EmbedderUnavailable, Embedding, l2_normalise, track_vector
from audiofind.hookspecs import hookimpl

SAMPLE_RATE = 44100
N_FFT = 2048
HOP = 1024
N_MELS = 96
WINDOW_FRAMES = 432  # ~10.0 s, a multiple of the network's 8x time pooling
HOP_FRAMES = 216
LOG_SCALE = 9.457798957824707  # aisfx's normalisation maximum of the training spectrograms
REFERENCE_RMS = 0.1  # -20 dBFS: the loudness each window is scaled to
BATCH = 8


def checkpoint_path():
    """The checkpoint inside the installed aisfx package, or None when it is not installed."""
    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "checkpoint.pth"
    return path if path.is_file() else None


def build_network():
    """The embedding part of aisfx's CrossNet, with the checkpoint's parameter names."""
    import torch
    from torch import nn

    def block(cin, cout):
        layers = nn.Module()
        layers.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        layers.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        layers.bn1 = nn.BatchNorm2d(cout)
        layers.bn2 = nn.BatchNorm2d(cout)
        return layers

    class Network(nn.Module):
        def __init__(self):
            super().__init__()
            for i, (cin, cout) in enumerate(((1, 64), (64, 128), (128, 256), (256, 512)), 1):
                setattr(self, f"conv_block{i}", block(cin, cout))

        def forward(self, spec):  # (batch, frames, mels) -> (batch, 512)
            x = spec.unsqueeze(1).contiguous(memory_format=torch.channels_last)  # oneDNN's native layout
            for i in range(1, 5):
                b = getattr(self, f"conv_block{i}")
                x = torch.relu(b.bn1(b.conv1(x)))
                x = torch.relu(b.bn2(b.conv2(x)))
                if i < 4:
                    x = nn.functional.max_pool2d(x, 2)
            return x.mean(dim=3).amax(dim=2)

    path = checkpoint_path()
    if path is None:
        raise EmbedderUnavailable("the aisfx checkpoint is not installed: pip install --no-deps aisfx")
    # The checkpoint pickles its dataset table with numpy scalars, so it is not weights-only; it comes from an
    # installed package, not from a user.
    weights, _ = torch.load(path, map_location="cpu", weights_only=False)
    prefix = "embedding_net."
    network = Network()
    network.load_state_dict({k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)})
    return network.eval().to(memory_format=torch.channels_last)


class AisfxEmbedder(Embedder):
    name = "aisfx"
    version = "1"
    sample_rate = SAMPLE_RATE
    window_dim = 512
    window_seconds = WINDOW_FRAMES * HOP / SAMPLE_RATE
    hop_seconds = HOP_FRAMES * HOP / SAMPLE_RATE

    def __init__(self, config):
        super().__init__(config)
        self._network = None

    def check(self) -> None:
        if checkpoint_path() is None:
            raise EmbedderUnavailable("the aisfx checkpoint is not installed: pip install --no-deps aisfx")

    @property
    def network(self):
        if self._network is None:
            self._network = build_network()
        return self._network

    def _frames(self, blocks):
        """(power mel (n, 96), total power (n,)) per frame, frames continuing exactly across blocks."""
        import librosa
        import scipy.fft

        mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=SAMPLE_RATE / 2,
                                  htk=True, norm=1).T.astype(np.float32)
        window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
        rest = np.zeros(0, np.float32)
        for block in blocks:
            x = np.concatenate([rest, np.asarray(block, np.float32)])
            if len(x) < N_FFT:
                rest = x
                continue
            n = 1 + (len(x) - N_FFT) // HOP
            frames = np.lib.stride_tricks.sliding_window_view(x[: (n - 1) * HOP + N_FFT], N_FFT)[::HOP]
            rest = x[n * HOP :]
            spectrum = scipy.fft.rfft(frames * window, axis=1)
            power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
            yield power @ mel, power.sum(axis=1)
        if len(rest):  # the last partial frame, zero-padded
            spectrum = scipy.fft.rfft(np.pad(rest, (0, N_FFT - len(rest))) * window)
            power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)[None]
            yield power @ mel, power.sum(axis=1)

    @staticmethod
    def _input(mel, total):
        """One window's network input: loudness-normalised, log-compressed, a multiple of 8 frames long."""
        reference = REFERENCE_RMS**2 * N_FFT * float(np.sum(np.hanning(N_FFT) ** 2)) / 2
        level = float(total.mean())
        scaled = mel * (reference / level) if level > 1e-9 else mel
        spec = np.log10(1e4 * scaled + 1) / LOG_SCALE
        pad = (-len(spec)) % 8 or (8 if len(spec) == 0 else 0)
        return np.pad(spec, ((0, pad), (0, 0)))

    def _forward(self, inputs):
        import torch

        from audiofind.embedders.panns import cpu_has_bf16

        # bfloat16 where the CPU computes it natively: ~8x faster here, embeddings at cosine > 0.9999 to float32.
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_bf16()):
            # Every batch has the same shape (padded with copies): oneDNN prepares its kernels once per shape.
            batch = np.stack([inputs[i] if i < len(inputs) else inputs[-1] for i in range(BATCH)]) if all(
                len(x) == len(inputs[0]) for x in inputs) else np.stack(inputs)
            return self.network(torch.from_numpy(batch).float()).float().numpy()[: len(inputs)]

    def embed(self, blocks: Iterable[np.ndarray]) -> Embedding:
        seconds_per_frame = HOP / SAMPLE_RATE
        samples = 0

        def counted():
            nonlocal samples
            for block in blocks:
                samples += len(block)
                yield block

        mel_buffer, total_buffer = np.zeros((0, N_MELS), np.float32), np.zeros(0, np.float32)
        first = 0  # absolute index of the buffer's first frame
        windows, vectors, pending = [], [], []

        def window_input(a, b):
            return self._input(mel_buffer[a - first : b - first], total_buffer[a - first : b - first])

        def flush():
            if pending:
                vectors.extend(self._forward(pending))
                pending.clear()

        for mel, total in self._frames(counted()):
            mel_buffer, total_buffer = np.concatenate([mel_buffer, mel]), np.concatenate([total_buffer, total])
            available = first + len(mel_buffer)
            while len(windows) * HOP_FRAMES + WINDOW_FRAMES <= available:
                a = len(windows) * HOP_FRAMES
                pending.append(window_input(a, a + WINDOW_FRAMES))
                windows.append((a * seconds_per_frame, (a + WINDOW_FRAMES) * seconds_per_frame))
                if len(pending) == BATCH:
                    flush()
            # Keep the last window's worth of frames: a final window ending at the track's end reaches back there.
            keep_from = max(first, available - WINDOW_FRAMES)
            mel_buffer, total_buffer = mel_buffer[keep_from - first :], total_buffer[keep_from - first :]
            first = keep_from
        duration = samples / SAMPLE_RATE
        available = first + len(mel_buffer)
        if not windows:  # shorter than one window: one window over all of it
            pending.append(window_input(first, available))
            windows.append((0.0, duration))
        elif duration - windows[-1][1] > 0.25:  # the end is not covered yet: one more window, ending at the end
            pending.append(window_input(max(first, available - WINDOW_FRAMES), available))
            windows.append((max(0.0, duration - self.window_seconds), duration))
        flush()
        window_vectors = l2_normalise(np.asarray(vectors, np.float32))
        return Embedding(
            vector=track_vector(window_vectors),
            windows=np.asarray(windows, np.float32),
            window_vectors=window_vectors,
            tags=[],
        )


@hookimpl
def register_embedders():
    return [AisfxEmbedder]


class Plugin:
    """``create_app(config, plugins=[trained_embedder.Plugin()])`` with ``EMBEDDER="aisfx"``."""

    register_embedders = staticmethod(register_embedders)
