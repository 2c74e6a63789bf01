"""PANNs Cnn14 embedder: 2048-d window embeddings and AudioSet tags from the official checkpoint.

Each second of audio goes through the convolution trunk once: the log-mel spectrogram is computed as
the audio streams in, the trunk runs over chunks of it (with a margin for its receptive field), and
every ~10 s window is pooled from the resulting feature sequence, the way Cnn14's own forward pools a clip.
"""

import ctypes
import importlib
import importlib.util
import json
import os
import sys
import tempfile
import threading
import types
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np

from audiofind.config import data_dir
from audiofind.embedders.base import Embedder, EmbedderUnavailable, Embedding, l2_normalise, track_vector
from audiofind.hookspecs import hookimpl

CHECKPOINT_NAME = "Cnn14_mAP=0.431.pth"
# Size of the official file (Zenodo record 3987831). No published sha256 is known to us, so only the size is checked.
CHECKPOINT_BYTES = 327_428_481
MODEL_ARGS = dict(sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50, fmax=14000, classes_num=527)

N_FFT = 1024
HOP = 320
FRAMES_PER_STEP = 32  # log-mel frames per trunk output frame: five 2x2 average poolings
STEP_SECONDS = FRAMES_PER_STEP * HOP / 32000  # 0.32 s
# The trunk's receptive field reaches 126 log-mel frames beyond its own 32-frame block on each side
# (two 3x3 convs per block at strides 1..32, plus the pooling windows); 128 keeps the pooling grid aligned.
MARGIN = 128
CHUNK_FRAMES = 6016  # ~60 s of log-mel frames per chunk (a multiple of 32): the margins add 4 %
WINDOW_STEPS = 32  # 10.24 s windows
HOP_STEPS = 16  # 5.12 s hop
MIN_SAMPLES = 32000  # shorter tracks are padded with silence to 1 s
TOP_TAGS = 5


def load_models_module():
    """panns_inference.models without running the package __init__.

    The package __init__ imports config.py, which downloads a label CSV into ~/panns_data with wget at
    import time. We give Python a bare package module whose __path__ is the installed folder, so only
    models.py and pytorch_utils.py run. models.py also imports matplotlib.pyplot, which Cnn14 never uses;
    stand-ins (removed again afterwards) keep that slow import and its config folder under $HOME away.
    """
    if "panns_inference.models" in sys.modules:
        return sys.modules["panns_inference.models"]
    if "panns_inference" not in sys.modules:
        spec = importlib.util.find_spec("panns_inference")
        if spec is None or not spec.submodule_search_locations:
            raise EmbedderUnavailable("the panns-inference package is not installed: pip install panns-inference")
        package = types.ModuleType("panns_inference")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["panns_inference"] = package
    stubs = {}
    if "matplotlib.pyplot" not in sys.modules:
        if "matplotlib" not in sys.modules:
            stubs["matplotlib"] = types.ModuleType("matplotlib")
        stubs["matplotlib.pyplot"] = types.ModuleType("matplotlib.pyplot")
        sys.modules.update(stubs)
    try:
        return importlib.import_module("panns_inference.models")
    finally:
        for name, stub in stubs.items():
            if sys.modules.get(name) is stub:
                del sys.modules[name]
        parent = sys.modules.get("matplotlib")
        if stubs and parent is not None and getattr(parent, "pyplot", None) is stubs["matplotlib.pyplot"]:
            del parent.pyplot


def build_cnn14():
    """A Cnn14 with the official construction arguments (random weights until a state_dict is loaded)."""
    return load_models_module().Cnn14(**MODEL_ARGS)


def checkpoint_path(config) -> Path:
    if config.get("PANNS_CHECKPOINT"):
        return Path(config["PANNS_CHECKPOINT"]).expanduser().resolve()
    return data_dir(config) / "models" / CHECKPOINT_NAME


def _missing_message(path: Path, url: str, reason: str) -> str:
    return (
        f"PANNs checkpoint not found at {path} and it could not be downloaded ({reason}). "
        f"Download {url} and save it as {path} (or set AUDIOFIND_PANNS_CHECKPOINT to where it is), "
        f"or use AUDIOFIND_EMBEDDER=dsp."
    )


def download_checkpoint(url: str, path: Path, expected_bytes: int = None) -> Path:
    """Download to a temporary file beside ``path`` with a progress bar, check the size, then rename into place."""
    from tqdm import tqdm

    expected_bytes = CHECKPOINT_BYTES if expected_bytes is None else expected_bytes
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise EmbedderUnavailable(_missing_message(path, url, f"cannot write to {path.parent}: {exc}")) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"Downloading {path.name}") as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        size = tmp.stat().st_size
        if size != expected_bytes:
            raise EmbedderUnavailable(
                _missing_message(path, url, f"the download has {size:,} bytes, expected {expected_bytes:,}")
            )
        os.replace(tmp, path)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise EmbedderUnavailable(_missing_message(path, url, str(getattr(exc, "reason", exc)))) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


def resolve_device(setting: str):
    import torch

    setting = (setting or "auto").lower()
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise EmbedderUnavailable("AUDIOFIND_DEVICE=cuda but PyTorch sees no CUDA device; use auto or cpu")
    if setting not in ("cpu", "cuda"):
        raise EmbedderUnavailable(f"AUDIOFIND_DEVICE={setting!r} is not one of auto, cpu, cuda")
    return torch.device(setting)


def read_checkpoint(path: Path) -> dict:
    """The state dict of an official-layout checkpoint ``{"model": state_dict}``, memory-mapped (nothing is read
    until a tensor is used)."""
    import torch

    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-zip) format
        state = checkpoint["model"] if isinstance(checkpoint, dict) and "model" in checkpoint else None
        if state is None:
            raise ValueError('not the official layout {"model": state_dict}')
        missing = [key for key in FrontEnd.KEYS + ("conv_block6.conv2.weight",) if key not in state]
        if missing:
            raise ValueError(f"no {', '.join(missing)}: not a Cnn14 checkpoint")
    except Exception as exc:  # a truncated or foreign file fails in many ways; all mean the same to the user
        raise EmbedderUnavailable(f"cannot load the PANNs checkpoint {path}: {exc}") from exc
    return state


def load_cnn14(path: Path, device="cpu"):
    """panns_inference's whole Cnn14 with the checkpoint's weights, in eval mode: the reference that tests and the
    article's baseline run (the embedder itself runs only FrontEnd and a trunk engine)."""
    model = build_cnn14().to("meta")  # its random initial weights are freed before the checkpoint's are read
    model.load_state_dict(read_checkpoint(path), assign=True)
    return model.eval().to(device)


def forget_pages(*tensors):
    """Drop the resident pages of memory-mapped checkpoint tensors once they are converted.

    Harmless for tensors that are not mapped: their whole pages read back as zeros, and nothing reads them again.
    """
    page = os.sysconf("SC_PAGE_SIZE")
    try:
        madvise = ctypes.CDLL(None).madvise
    except (OSError, AttributeError):
        return
    for tensor in tensors:
        start = -(-tensor.data_ptr() // page) * page
        end = (tensor.data_ptr() + tensor.numel() * tensor.element_size()) // page * page
        if end > start:
            madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), 4)  # MADV_DONTNEED


def release_free_memory():
    """Give the C heap's free pages back to the OS (glibc keeps them after large frees; ~100-300 MB here)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class FrontEnd:
    """What Cnn14 computes outside its convolution trunk, from its own weights: the log-mel filter bank and the
    clip head (fc1, fc_audioset).

    panns_inference builds these as torchlibrosa modules whose set-up (an STFT as a conv1d with 1024 kernels)
    takes seconds; the same arithmetic from the checkpoint's tensors needs none of it.
    """

    KEYS = ("logmel_extractor.melW", "fc1.weight", "fc1.bias", "fc_audioset.weight", "fc_audioset.bias")

    def __init__(self, tensors, device="cpu"):
        self.mel = tensors["logmel_extractor.melW"].float().to(device)  # (513, 64)
        self.fc1 = (tensors["fc1.weight"].to(device), tensors["fc1.bias"].to(device))
        self.fc_audioset = (tensors["fc_audioset.weight"].to(device), tensors["fc_audioset.bias"].to(device))

    @classmethod
    def tensors(cls, state) -> dict:
        return {key: state[key].float().clone() for key in cls.KEYS}

    def logmel(self, power):
        """torchlibrosa's LogmelFilterBank as Cnn14 sets it up (ref 1.0, amin 1e-10, no top_db): (n, 513) -> (n, 64)."""
        import torch

        return 10.0 * torch.log10(torch.clamp(power @ self.mel, min=1e-10))


def cache_path(checkpoint: Path, kind: str) -> Path:
    """A file beside the checkpoint, keyed by its size and mtime so a replaced checkpoint is never stale."""
    stat = checkpoint.stat()
    return checkpoint.with_name(f"{checkpoint.stem}.{stat.st_size}-{stat.st_mtime_ns}.{kind}")


def _atomic_write(target: Path, write):
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


# Raise when a conversion changes: every converted-weights file of an older version is then made again.
CONVERTER_VERSION = 1


def converted(checkpoint: Path, kind: str, convert) -> dict:
    """Tensors derived from the checkpoint (``convert()`` -> dict), computed once, saved beside it and
    memory-mapped on every later load: worker processes share their pages, and a restart converts nothing.

    An unreadable file is converted again; where the folder is read-only the tensors stay in memory.
    """
    import torch

    path = cache_path(checkpoint, f"{kind}.v{CONVERTER_VERSION}.pt")
    if path.exists():
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # truncated or foreign: made again below
            pass
    tensors = convert()
    try:
        _atomic_write(path, lambda tmp: torch.save(tensors, tmp))
    except OSError:
        return tensors
    del tensors
    release_free_memory()
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def fold_trunk(state, blocks=6, dtype=None) -> dict:
    """bn0 as (scale, shift) over mel bins and each conv of the first ``blocks`` with its batch norm folded in
    (weights channels-last, oneDNN's native layout, in ``dtype``; bn0 stays float32)."""
    import torch

    from audiofind.embedders.convolutions import fold_batch_norm

    dtype = dtype or torch.float32
    scale, shift = fold_batch_norm(state, "bn0")
    tensors = {"bn0.scale": scale, "bn0.shift": shift}
    for i in range(1, blocks + 1):
        for j in (1, 2):
            scale, shift = fold_batch_norm(state, f"conv_block{i}.bn{j}")
            weight = state[f"conv_block{i}.conv{j}.weight"]
            folded = (weight.float() * scale[:, None, None, None]).to(dtype)
            tensors[f"conv{i}.{j}.weight"] = folded.contiguous(memory_format=torch.channels_last)
            tensors[f"conv{i}.{j}.bias"] = shift.to(dtype)
    return tensors


def gemm_conv_relu(x, weight, bias):
    """relu(conv2d(x, weight, bias, padding=1)) as convolutions.GemmConv3x3's one matrix product, for channels-last
    ``x`` (N, C, H, W) and ``weight`` (out, C, 3, 3); the result is channels-last too."""
    from audiofind.embedders.convolutions import GemmConv3x3

    matrix = weight.permute(0, 2, 3, 1).reshape(len(weight), -1).T  # (9 * C, out), a view of channels-last weights
    return GemmConv3x3(matrix, bias)(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def folded_trunk(tensors, blocks=6):
    """The trunk from ``fold_trunk``'s tensors: log-mel (batch, 1, frames, 64) -> (batch, 2048, frames // 32), or
    with ``blocks`` < 6 the pooled activations of the first blocks, (batch, channels, frames, mel).

    Equal to Cnn14's bn0 and conv blocks (conv, bn, relu, twice; 2x2 average pooling but after block 6; mean over
    mel) within float rounding. The input is cast to the convolutions' type after bn0.
    """
    import torch
    import torch.nn.functional as F

    class FoldedTrunk(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for name, tensor in tensors.items():
                self.register_buffer(name.replace(".", "_"), tensor)

        def forward(self, logmel):
            x = logmel * self.bn0_scale + self.bn0_shift
            x = x.to(self.conv1_1_weight.dtype)
            exporting = torch.onnx.is_in_onnx_export()
            if not exporting:
                x = x.contiguous(memory_format=torch.channels_last)
            for i in range(1, blocks + 1):
                for j in (1, 2):
                    weight, bias = getattr(self, f"conv{i}_{j}_weight"), getattr(self, f"conv{i}_{j}_bias")
                    if exporting or x.device.type != "cpu":
                        x = F.relu_(F.conv2d(x, weight, bias, padding=1))
                    elif (i, j) in self.GEMMS:
                        x = gemm_conv_relu(x, weight, bias)
                    else:  # oneDNN's convolution with the ReLU fused into it: one pass over the activations less
                        x = torch.ops.mkldnn._convolution_pointwise(x, weight, bias, [1, 1], [1, 1], [1, 1], 1,
                                                                    "relu", [], "")
                if i < 6:
                    x = F.avg_pool2d(x, 2)
            return x.mean(dim=3) if blocks == 6 else x

        # oneDNN's direct convolution is slow for the one input channel of conv 1.1 and for block 6's picture
        # two positions wide: one matrix product over the 3x3 neighbourhoods does those 2-3x faster.
        GEMMS = {(1, 1), (6, 1), (6, 2)}

    return FoldedTrunk().eval()


def torch_runner(checkpoint, state, device, precision=None):
    """The trunk in PyTorch; with ``precision`` bfloat16/float16 its weights and activations are in that type.

    (Converting the weights once measured ~7 % faster than autocast, which casts them on every call.)
    """
    import torch

    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision, torch.float32)
    kind = f"folded-{precision or 'float32'}"
    trunk = folded_trunk(converted(checkpoint, kind, lambda: fold_trunk(state(), 6, dtype))).to(device)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return trunk(torch.from_numpy(batch).to(device)).float().cpu().numpy()

    return run


def export_trunk(checkpoint: Path, state, blocks=6) -> Path:
    """The trunk (or its first ``blocks``) as ONNX, dynamic batch and length, exported once and cached beside
    the checkpoint (``state``: a callable giving the checkpoint's state dict, called only to export).

    The weights go to a separate ``.data`` file, which ONNX Runtime maps instead of copying out of the
    protobuf: that takes ~350 MB off the peak memory of loading the session.
    """
    target = cache_path(checkpoint, "trunk.onnx" if blocks == 6 else f"trunk-blocks1-{blocks}.onnx")
    data = target.with_name(target.name + ".data")
    if target.exists() and data.exists():
        return target
    import onnx
    import torch

    trunk = folded_trunk(fold_trunk(state(), blocks), blocks)
    example = torch.zeros(1, 1, 2 * FRAMES_PER_STEP * 8, 64)
    result = "features" if blocks == 6 else "activations"
    try:
        with tempfile.TemporaryDirectory(dir=target.parent) as work:
            exported = Path(work) / "trunk.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    trunk, (example,), str(exported), input_names=["logmel"], output_names=[result],
                    opset_version=17, dynamo=False,
                    dynamic_axes={"logmel": {0: "batch", 2: "frames"}, result: {0: "batch", 2: "steps"}},
                )
            staged = Path(work) / target.name
            onnx.save_model(onnx.load(str(exported)), str(staged), save_as_external_data=True,
                            all_tensors_to_one_file=True, location=data.name, size_threshold=1024)
            os.replace(Path(work) / data.name, data)  # the weights first: a model file always has its data
            os.replace(staged, target)
    except Exception as exc:  # exporter failures come in many types
        raise EmbedderUnavailable(f"cannot export the Cnn14 trunk to ONNX at {target}: {exc}") from exc
    return target


class LogmelStream:
    """Cnn14's log-mel frames computed block by block, equal to its whole-file spectrogram.

    Cnn14 reflect-pads the signal by n_fft/2 at both ends (center=True); we pad only at the real track
    edges and carry the overlap between blocks, then apply the same STFT (hann, 1024, hop 320) and the
    model's own mel filter bank (FrontEnd).
    """

    def __init__(self, front, device):
        self.front = front
        self.device = device
        self.buffer = np.zeros(0, dtype=np.float32)
        self.samples = 0
        self.started = False
        self.window = None

    def push(self, block) -> np.ndarray:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self.samples += len(block)
        self.buffer = np.concatenate([self.buffer, block])
        if not self.started and len(self.buffer) > N_FFT // 2:
            self._pad_start()
        return self._frames() if self.started else np.zeros((0, 64), np.float32)

    def finish(self) -> np.ndarray:
        if self.samples < MIN_SAMPLES:
            self.buffer = np.concatenate([self.buffer, np.zeros(MIN_SAMPLES - self.samples, np.float32)])
        if not self.started:
            self._pad_start()
        self.buffer = np.concatenate([self.buffer, self.buffer[-N_FFT // 2 - 1:-1][::-1]])
        return self._frames()

    def _pad_start(self):
        self.buffer = np.concatenate([self.buffer[1:N_FFT // 2 + 1][::-1], self.buffer])
        self.started = True

    def _frames(self) -> np.ndarray:
        import torch

        n = (len(self.buffer) - N_FFT) // HOP + 1 if len(self.buffer) >= N_FFT else 0
        if n <= 0:
            return np.zeros((0, 64), np.float32)
        used = self.buffer[: (n - 1) * HOP + N_FFT]
        self.buffer = self.buffer[n * HOP:]
        if self.window is None:  # torchlibrosa's STFT is a conv1d with hann-windowed cos/sin kernels; an FFT
            self.window = torch.hann_window(N_FFT, periodic=True, device=self.device)  # is the same, faster
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(used)).to(self.device)
            spectrum = torch.stft(x, N_FFT, HOP, window=self.window, center=False, return_complex=True)
            power = torch.view_as_real(spectrum).square_().sum(dim=-1)  # (513, n)
            logmel = self.front.logmel(power.T)  # (n, 64)
        return logmel.float().cpu().numpy()


class ChunkedTrunk:
    """Runs the trunk over chunks of streamed log-mel frames, each with a margin on both sides.

    Chunk c yields trunk frames [c*K, (c+1)*K) (K = chunk/32) from log-mel frames
    [c*chunk - MARGIN, (c+1)*chunk + MARGIN); the first chunk takes its whole margin on the right so that
    every chunk but the last has the same length and they batch together. Chunk starts are multiples of
    32 frames, so the 2x2 pooling grid is the whole-track grid and the frames equal one whole-track pass.
    """

    def __init__(self, run, chunk_frames=CHUNK_FRAMES, batch_size=4):
        if chunk_frames % FRAMES_PER_STEP:
            raise ValueError("chunk_frames must be a multiple of 32")
        self.run = run  # (batch, 1, frames, 64) float32 ndarray -> (batch, 2048, frames // 32) ndarray
        self.chunk = chunk_frames
        self.batch_size = max(1, int(batch_size))
        self.frames = np.zeros((0, 64), np.float32)
        self.offset = 0  # absolute index of self.frames[0]
        self.next_chunk = 0
        self.pending = []  # (input frames, first output frame to keep, how many)
        self.outputs = []

    def _start(self, c):
        return max(0, c * self.chunk - MARGIN)

    def push(self, logmel: np.ndarray):
        self.frames = np.concatenate([self.frames, logmel])
        length = self.chunk + 2 * MARGIN
        while True:
            start = self._start(self.next_chunk)
            if self.offset + len(self.frames) < start + length:
                break
            keep_from = self.next_chunk * self.chunk - start
            self.pending.append((self.frames[start - self.offset:start - self.offset + length], keep_from, self.chunk))
            self.next_chunk += 1
            self._trim()
            if len(self.pending) >= self.batch_size:
                self._flush()

    def finish(self) -> np.ndarray:
        total = self.offset + len(self.frames)
        first = self.next_chunk * self.chunk
        steps = total // FRAMES_PER_STEP - first // FRAMES_PER_STEP
        if steps > 0:
            start = self._start(self.next_chunk)
            self.pending.append((self.frames[start - self.offset:], first - start, steps * FRAMES_PER_STEP))
        self._flush()
        if not self.outputs:
            return np.zeros((0, 2048), np.float32)
        return np.concatenate(self.outputs)

    def _trim(self):
        drop = self._start(self.next_chunk) - self.offset
        if drop > 0:
            self.frames = self.frames[drop:]
            self.offset += drop

    def _flush(self):
        groups = {}
        for i, (frames, _, _) in enumerate(self.pending):
            groups.setdefault(len(frames), []).append(i)
        results = [None] * len(self.pending)
        for indices in groups.values():
            batch = np.stack([self.pending[i][0] for i in indices])[:, None]
            out = self.run(batch)
            for row, i in zip(out, indices):
                results[i] = row
        for (_, keep_from, keep), out in zip(self.pending, results):
            a = keep_from // FRAMES_PER_STEP
            self.outputs.append(np.ascontiguousarray(out[:, a:a + keep // FRAMES_PER_STEP].T, dtype=np.float32))
        self.pending = []


def window_spans(steps: int):
    """(start, end) trunk-frame spans of the overlapping windows; the last one ends at the track's end."""
    if steps <= WINDOW_STEPS:
        return [(0, max(steps, 1))]
    starts = list(range(0, steps - WINDOW_STEPS + 1, HOP_STEPS))
    if starts[-1] + WINDOW_STEPS < steps:
        starts.append(steps - WINDOW_STEPS)
    return [(s, s + WINDOW_STEPS) for s in starts]


def pool_windows(front, sequence: np.ndarray, spans):
    """Cnn14's clip head on each window: max + mean over time, fc1 + relu (embedding), fc_audioset + sigmoid.

    The pooling runs in NumPy: a window is too small for PyTorch's per-operation overhead, which took 0.5 s
    for the 40 windows of a 3.5-minute track on a busy 2-core machine.
    """
    import torch
    import torch.nn.functional as F

    sequence = np.asarray(sequence, dtype=np.float32)
    pooled = np.stack([sequence[s:e].max(axis=0) + sequence[s:e].mean(axis=0) for s, e in spans])
    with torch.inference_mode():
        embedding = torch.relu(F.linear(torch.from_numpy(pooled).to(front.fc1[0].device), *front.fc1))
        scores = torch.sigmoid(F.linear(embedding, *front.fc_audioset))
    return embedding.cpu().numpy(), scores.cpu().numpy()


PRECISIONS = ("auto", "float32", "bfloat16", "float16", "int8")
ENGINES = ("auto", "winograd", "onnx", "torch")  # on CPU; auto is winograd (FastTrunk) when ONNX Runtime works
INT8_MIN_COSINE = 0.99
CALIBRATION_TRACKS = 8  # int8: catalog tracks whose audio calibrates the quantisation (every third is held out)
CALIBRATION_CLIP = 1024  # log-mel frames per calibration clip (~10 s)


def _has_onnxruntime() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def cpu_has_bf16() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def onnx_session(path: Path, arena: bool = False, spinning: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Without the arena, a 60 s chunk's activations are given back after each run: float32 peaks ~260 MB
    # lower on a 60-minute file and measured ~3 % slower. The int8 graph (many small QDQ tensors) measured
    # ~25 % slower without it, so it keeps the arena.
    options.enable_cpu_mem_arena = arena
    if not spinning:  # its idle threads would otherwise spin on the cores PyTorch runs on next
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_runner(path: Path):
    session = onnx_session(path)

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {"logmel": np.ascontiguousarray(batch, dtype=np.float32)})[0]

    run.session = session
    return run


class FastTrunk:
    """The trunk on CPU in float32 or bfloat16, with fewer multiplications where that pays (convolutions.py).

    Blocks 1-2: ONNX Runtime's float32 convolutions or oneDNN's bfloat16 ones. Blocks 3-5: Winograd. Block 6:
    one matmul per convolution. The converted weights are made once and memory-mapped (``converted``).
    """

    # Per conv of blocks 3-5 (see WinogradConv3x3). In float32 block 5 takes 2x2 tiles: 4x4 ones would
    # make its weights 226 MB instead of 101 MB (the worker's peak memory) for ~5 % more speed.
    FLOAT32_TILES = (4, 4, 4, 4, 2, 2)
    TILE_ROWS = (16, 32, 64, 128, 1 << 20, 1 << 20)
    HEAD_PIECE = 1024  # log-mel frames per ONNX Runtime run of blocks 1-2 (a multiple of their pooling, 4)
    HEAD_MARGIN = 16  # frames on each side of a piece: more than blocks 1-2 see (their receptive field is 10)
    MIDDLE = [(block, conv) for block in (3, 4, 5) for conv in (1, 2)]

    def __init__(self, checkpoint: Path, state, dtype):
        import torch

        from audiofind.embedders.convolutions import GemmConv3x3, WinogradConv3x3

        self.dtype = dtype
        name = str(dtype).removeprefix("torch.")
        tensors = converted(checkpoint, f"fast-{name}", lambda: self.convert(state(), dtype))
        if dtype == torch.float32:
            self.head = onnx_session(export_trunk(checkpoint, state, blocks=2), arena=True, spinning=False)
        else:
            self.head = folded_trunk({k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")}, 2)
        self.middle = [WinogradConv3x3(tensors[f"middle{n}.weight"], tensors[f"middle{n}.bias"], rows)
                       for n, rows in enumerate(self.TILE_ROWS)]
        self.tail = [GemmConv3x3(tensors[f"tail{n}.weight"], tensors[f"tail{n}.bias"]) for n in range(2)]

    @classmethod
    def convert(cls, state, dtype) -> dict:
        import torch

        from audiofind.embedders.convolutions import GemmConv3x3, WinogradConv3x3, fold_batch_norm

        tensors = {}
        if dtype != torch.float32:  # bn0 and blocks 1-2 for oneDNN (float32 runs them from the ONNX export)
            tensors.update({f"head.{k}": v for k, v in fold_trunk(state, 2, dtype).items()})
        tiles = cls.FLOAT32_TILES if dtype == torch.float32 else (4,) * 6
        for n, ((block, conv), tile) in enumerate(zip(cls.MIDDLE, tiles)):
            weight = state[f"conv_block{block}.conv{conv}.weight"]
            tensors[f"middle{n}.weight"], tensors[f"middle{n}.bias"] = WinogradConv3x3.transform(
                weight, *fold_batch_norm(state, f"conv_block{block}.bn{conv}"), dtype, tile)
            forget_pages(weight)  # each layer's checkpoint pages leave RAM once it is converted
        for n in range(2):
            weight = state[f"conv_block6.conv{n + 1}.weight"]
            tensors[f"tail{n}.weight"], tensors[f"tail{n}.bias"] = GemmConv3x3.transform(
                weight, *fold_batch_norm(state, f"conv_block6.bn{n + 1}"), dtype)
            forget_pages(weight)
        return tensors

    def __call__(self, batch: np.ndarray) -> np.ndarray:  # -> (N, 2048, steps)
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            x = self._head(np.ascontiguousarray(batch, dtype=np.float32))  # (N, H, W, C), channels last
            for i, conv in enumerate(self.middle):
                x = conv(x)
                if i % 2:
                    x = F.avg_pool2d(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
            for conv in self.tail:
                x = conv(x)
            return x.float().mean(dim=2).permute(0, 2, 1).contiguous().numpy()

    def _head(self, batch):
        import torch

        if self.dtype == torch.float32:  # in pieces: a whole chunk's block-1 activations would take 300 MB
            frames, pieces = batch.shape[2], []
            for start in range(0, frames, self.HEAD_PIECE):
                first = max(0, start - self.HEAD_MARGIN)
                x = self.head.run(None, {"logmel": batch[:, :, first:start + self.HEAD_PIECE + self.HEAD_MARGIN]})[0]
                keep = (min(frames, start + self.HEAD_PIECE) // 4) - start // 4
                pieces.append(torch.from_numpy(x[:, :, (start - first) // 4:][:, :, :keep]).permute(0, 2, 3, 1))
            return torch.cat(pieces, dim=1)
        return self.head(torch.from_numpy(batch)).permute(0, 2, 3, 1)


class Int8Trunk:
    """ONNX Runtime static int8 (QDQ, per-channel weights), calibrated on the user's own catalog audio.

    Until a calibrated model exists, tracks are embedded in float32 and a few clips of each are kept;
    after CALIBRATION_TRACKS tracks the model is quantised and compared with float32 on the held-out
    tracks' clips. Below INT8_MIN_COSINE it refuses (EmbedderUnavailable with the figure), now and in every
    later process, until the report file is deleted.
    """

    def __init__(self, embedder, float_run):
        self.embedder = embedder
        self.float_run = float_run
        checkpoint = embedder.checkpoint
        self.model_path = cache_path(checkpoint, "trunk-int8.onnx")
        self.report_path = cache_path(checkpoint, "trunk-int8.json")
        self.tracks = []  # calibration clips, one list per track
        self.current = []  # clips of the track being embedded
        self.session = None
        self.cosine = None
        if self.report_path.exists():
            self._use(json.loads(self.report_path.read_text()))

    def _use(self, report):
        self.cosine = report["cosine"]
        if self.cosine < INT8_MIN_COSINE:
            raise EmbedderUnavailable(
                f"int8 Cnn14 refused: its embeddings reach cosine {self.cosine:.4f} to float32 on "
                f"{report['held_out_clips']} held-out clips of your catalog (minimum {INT8_MIN_COSINE}). "
                f"Use AUDIOFIND_PANNS_PRECISION=float32 (or bfloat16), or delete {self.report_path} to calibrate again."
            )
        if self.session is None and self.model_path.exists():
            self.session = onnx_session(self.model_path, arena=True)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.session is not None:
            return self.session.run(None, {"logmel": np.ascontiguousarray(batch, dtype=np.float32)})[0]
        for chunk in batch:  # keep up to 3 clips of ~10 s from the middle of this track's chunks
            frames = chunk.shape[1] // FRAMES_PER_STEP * FRAMES_PER_STEP
            size = min(CALIBRATION_CLIP, frames)
            start = (frames - size) // 2 // FRAMES_PER_STEP * FRAMES_PER_STEP
            if size and len(self.current) < 3:
                self.current.append(np.ascontiguousarray(chunk[None, :, start:start + size]))
        return self.float_run(batch)

    def track_done(self):
        if self.session is None and self.current:
            self.tracks.append(self.current)
            self.current = []
            if len(self.tracks) >= CALIBRATION_TRACKS:
                self.build()

    def build(self) -> float:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        if len(self.tracks) < 2:
            raise EmbedderUnavailable("int8 calibration needs the audio of at least 2 catalog tracks")
        held = [i % 3 == 2 or (len(self.tracks) == 2 and i == 1) for i in range(len(self.tracks))]
        held_out = [clip for t, h in zip(self.tracks, held) if h for clip in t]
        calibration = [clip for t, h in zip(self.tracks, held) if not h for clip in t]

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.clips = iter(calibration)

            def get_next(self):
                clip = next(self.clips, None)
                return None if clip is None else {"logmel": clip}

        float_model = export_trunk(self.embedder.checkpoint, self.embedder._state)

        def write(tmp):
            with tempfile.TemporaryDirectory(dir=self.model_path.parent) as work:
                prepared, embedded = Path(work) / "prepared.onnx", Path(work) / "embedded.onnx"
                onnx.save_model(onnx.load(str(float_model)), str(embedded))  # the pre-processor wants one file
                quant_pre_process(str(embedded), str(prepared), skip_symbolic_shape=True)
                quantize_static(
                    str(prepared), tmp, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                )

        _atomic_write(self.model_path, write)
        session = onnx_session(self.model_path, arena=True)
        cosines = []
        front = self.embedder.front
        for clip in held_out:
            ours = session.run(None, {"logmel": clip})[0][0].T
            reference = self.float_run(clip)[0].T
            a = pool_windows(front, reference, [(0, len(reference))])[0][0]
            b = pool_windows(front, ours, [(0, len(ours))])[0][0]
            cosines.append(float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)))
        report = {"cosine": float(np.mean(cosines)), "min_cosine": float(np.min(cosines)),
                  "held_out_clips": len(held_out), "calibration_clips": len(calibration),
                  "tracks": len(self.tracks)}
        self.report_path.write_text(json.dumps(report))
        self.tracks = []
        self._use(report)
        return report["cosine"]


# auto: a candidate's probe embedding must reach this cosine to float32's. Measured on a real catalog
# (BENCHMARKS.md, bench_int8.py): bfloat16 at 0.99998 kept 99 % of "more like this" top-10s, int8 at 0.9995
# only 85 %, so the gate sits between them.
AUTO_MIN_COSINE = 0.9999
PROBE_FRAMES = 2048 + 2 * MARGIN  # auto: log-mel frames (~23 s) each candidate is timed on


def cpu_identity() -> str:
    """The CPU model, the cores this process may use and the instruction set PyTorch dispatches to."""
    import torch

    model = ""
    try:
        with open("/proc/cpuinfo") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        pass
    import platform

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model or platform.processor() or platform.machine()}, {cores} cores, {torch.backends.cpu.get_cpu_capability()}"


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "onnxruntime", "onnx", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return dict(found, converter=CONVERTER_VERSION)


def probe_logmel(front) -> np.ndarray:
    """A fixed stretch of music-like audio (chords with a beat) as Cnn14's log-mel, (1, 1, PROBE_FRAMES, 64)."""
    rng = np.random.default_rng(0)
    t = np.arange((PROBE_FRAMES - 1) * HOP) / 32000
    signal = np.zeros_like(t)
    for k, f in enumerate((110, 196, 262, 330)):
        signal += np.sin(2 * np.pi * f * t + k) * (0.5 + 0.5 * np.sin(2 * np.pi * (0.3 + k * 0.1) * t))
    signal += (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(len(t)) * 2
    stream = LogmelStream(front, "cpu")
    frames = np.concatenate([stream.push((0.05 * signal).astype(np.float32)), stream.finish()])
    return np.ascontiguousarray(frames[None, None, :PROBE_FRAMES])


class CheckpointState:
    """The checkpoint's state dict, read (memory-mapped) on first use only: a cached load needs none of it."""

    def __init__(self, path: Path):
        self.path = path
        self.state = None

    def __call__(self) -> dict:
        if self.state is None:
            self.state = read_checkpoint(self.path)
        return self.state

    def release(self):
        self.state = None


class PannsEmbedder(Embedder):
    name = "panns"
    version = "cnn14-1"
    sample_rate = 32000
    window_dim = 2048
    window_seconds = WINDOW_STEPS * STEP_SECONDS
    hop_seconds = HOP_STEPS * STEP_SECONDS

    def __init__(self, config):
        super().__init__(config)
        self.front = None
        self.device = None
        self.choice = None  # how the engine was chosen: see summary()
        self._run = None
        self._state = None
        self._lock = threading.Lock()

    @property
    def checkpoint(self) -> Path:
        return checkpoint_path(self.config)

    def check(self) -> None:
        self._load()

    def _load(self):
        with self._lock:
            if self.front is not None:
                return self.front
            path = self.checkpoint
            if not path.is_file():
                url = self.config.get("PANNS_CHECKPOINT_URL") or ""
                if not url:
                    raise EmbedderUnavailable(_missing_message(path, "the official Cnn14 checkpoint", "no URL set"))
                download_checkpoint(url, path)
            self.device = resolve_device(self.config.get("DEVICE", "auto"))
            self._state = CheckpointState(path)
            front = FrontEnd(converted(path, "front", lambda: FrontEnd.tensors(self._state())), self.device)
            self._run, self.choice = self._make_runner(front)
            if not isinstance(self._run, Int8Trunk):  # int8 exports the trunk again when it calibrates
                self._state.release()
            release_free_memory()
            self.front = front
            return front

    def _settings(self):
        precision = (self.config.get("PANNS_PRECISION") or "auto").lower()
        engine = (self.config.get("PANNS_ENGINE") or "auto").lower()
        if precision not in PRECISIONS:
            raise EmbedderUnavailable(
                f"AUDIOFIND_PANNS_PRECISION={precision!r} is not one of {', '.join(PRECISIONS)}"
            )
        if engine not in ENGINES:
            raise EmbedderUnavailable(f"AUDIOFIND_PANNS_ENGINE={engine!r} is not one of {', '.join(ENGINES)}")
        cuda = self.device.type == "cuda"
        if precision == "float16" and not cuda:
            raise EmbedderUnavailable("AUDIOFIND_PANNS_PRECISION=float16 needs a CUDA device; on CPU use bfloat16")
        if precision == "bfloat16" and not cuda and not cpu_has_bf16():
            raise EmbedderUnavailable(
                "AUDIOFIND_PANNS_PRECISION=bfloat16: this CPU has no native bfloat16 (AVX512-BF16 or AMX); "
                "it would be slower than float32, use float32"
            )
        if precision == "int8" and cuda:
            raise EmbedderUnavailable("AUDIOFIND_PANNS_PRECISION=int8 runs on CPU only; on a GPU use float16")
        return precision, engine

    def candidates(self, engine: str) -> list:
        """The (precision-engine) labels ``auto`` times here, the float32 reference first."""
        if self.device.type == "cuda":
            return ["float32-torch", "float16-torch", "bfloat16-torch"]
        engines = ["winograd", "torch"] if engine == "auto" else [engine]
        if not _has_onnxruntime():
            engines = [e for e in engines if e == "torch"] or ["torch"]
        labels = [f"float32-{e}" for e in engines]
        if cpu_has_bf16():
            labels += [f"bfloat16-{e}" for e in engines if e != "onnx"]
        if engine == "auto" and self._int8_report() is not None:
            labels.append("int8-onnx")  # only once this catalog's calibration has passed its self-check
        return labels

    def _int8_report(self):
        report = cache_path(self.checkpoint, "trunk-int8.json")
        try:
            data = json.loads(report.read_text())
        except (OSError, ValueError):
            return None
        model = cache_path(self.checkpoint, "trunk-int8.onnx")
        return data if data.get("cosine", 0) >= INT8_MIN_COSINE and model.exists() else None

    def _make_runner(self, front):
        precision, engine = self._settings()
        if precision != "auto":
            if engine == "auto":
                engine = "onnx" if precision == "int8" else "winograd"
            return self._build(f"{precision}-{engine}"), {"precision": precision, "engine": engine, "how": "configured"}
        from audiofind.embedders import autotune

        candidates = self.candidates(engine)
        key = {"cpu": cpu_identity() if self.device.type == "cpu" else self._gpu_name(),
               "checkpoint": cache_path(self.checkpoint, "").name, "versions": _versions(),
               "int8": self._int8_report()}

        def similarity(output, reference):
            ours = pool_windows(front, output[0].T, [(0, output.shape[2])])[0][0]
            theirs = pool_windows(front, reference[0].T, [(0, reference.shape[2])])[0][0]
            return ours @ theirs / max(np.linalg.norm(ours) * np.linalg.norm(theirs), 1e-12)

        label, runner, decision = autotune.choose(
            cache_path(self.checkpoint, "engine.json"), key, candidates, candidates[0], self._build,
            lambda: probe_logmel(front), similarity, AUTO_MIN_COSINE,
        )
        precision, engine = label.split("-")
        return runner, dict(decision, precision=precision, engine=engine)

    def _gpu_name(self):
        import torch

        return torch.cuda.get_device_name(self.device)

    def _build(self, label):
        """The runner for a precision-engine label (``candidates``); engine "onnx" for int8 is its QDQ graph."""
        import torch

        precision, engine = label.split("-")
        if precision == "int8":
            return Int8Trunk(self, torch_runner(self.checkpoint, self._state, self.device))
        if self.device.type == "cuda" or engine == "torch":
            return torch_runner(self.checkpoint, self._state, self.device, None if precision == "float32" else precision)
        if precision == "bfloat16":
            return FastTrunk(self.checkpoint, self._state, torch.bfloat16)
        if not _has_onnxruntime():
            return torch_runner(self.checkpoint, self._state, self.device)
        try:
            if engine == "onnx":
                return onnx_runner(export_trunk(self.checkpoint, self._state))
            return FastTrunk(self.checkpoint, self._state, torch.float32)
        except EmbedderUnavailable:
            if (self.config.get("PANNS_ENGINE") or "auto").lower() != "auto":
                raise
            warnings.warn("ONNX export of the Cnn14 trunk failed; using PyTorch", RuntimeWarning)
            return torch_runner(self.checkpoint, self._state, self.device)

    def summary(self) -> dict:
        """What runs the model and why: {name, device, precision, engine, how, seconds?, similarity?}.

        ``how``: "configured" (AUDIOFIND_PANNS_PRECISION set), "measured" (timed at this load) or "cached" (timed
        at an earlier load on this machine). Before the model is loaded in this process, the cached decision, if
        any, without loading anything.
        """
        choice = self.choice
        if choice is None:
            try:
                choice = json.loads(cache_path(self.checkpoint, "engine.json").read_text())
                choice = dict(choice, how="cached", precision=choice["chosen"].split("-")[0],
                              engine=choice["chosen"].split("-")[1])
            except (OSError, ValueError, KeyError):
                return {"name": self.name, "loaded": False}
        keep = ("precision", "engine", "how", "seconds", "similarity", "min_similarity")
        return {"name": self.name, "loaded": self.front is not None,
                "device": self.device.type if self.device is not None else None,
                **{k: choice[k] for k in keep if k in choice},
                **({"cpu": choice["key"]["cpu"]} if "key" in choice else {})}

    def calibrate_int8(self, tracks) -> float:
        """Build the int8 trunk from ``tracks`` (an iterable of block iterables, the catalog's own audio).

        Returns the mean cosine to float32 on held-out clips; raises EmbedderUnavailable when it is too low.
        """
        self._load()
        if not isinstance(self._run, Int8Trunk):
            raise EmbedderUnavailable("calibrate_int8 needs AUDIOFIND_PANNS_PRECISION=int8")
        for blocks in tracks:
            self.feature_sequence(blocks)
            self._run.track_done()
            if self._run.session is not None:
                return self._run.cosine
        return self._run.build()

    def feature_sequence(self, blocks):
        """The trunk's 2048-channel sequence for a track (one row per 0.32 s) and its duration in seconds."""
        front = self._load()
        stream = LogmelStream(front, self.device)
        # Chunks per forward: on CPU one, since batching 60 s chunks gains no speed there and costs ~300 MB
        # of activations per extra chunk; on a GPU, PANNS_BATCH_SIZE.
        batch = int(self.config.get("PANNS_BATCH_SIZE", 4)) if self.device.type == "cuda" else 1
        chunks = ChunkedTrunk(self._run, CHUNK_FRAMES, batch)
        for block in blocks:
            chunks.push(stream.push(block))
        chunks.push(stream.finish())
        sequence = chunks.finish()
        return sequence, stream.samples / self.sample_rate

    def embed(self, blocks) -> Embedding:
        from audiofind.labels import audioset_labels

        sequence, duration = self.feature_sequence(blocks)
        if isinstance(self._run, Int8Trunk):
            self._run.track_done()  # may calibrate now, and refuse (raise) if int8 is not accurate enough
        spans = window_spans(len(sequence))
        embeddings, scores = pool_windows(self.front, sequence, spans)
        window_vectors = l2_normalise(embeddings)
        windows = np.array([(s * STEP_SECONDS, min(e * STEP_SECONDS, duration)) for s, e in spans], np.float32)
        windows[-1, 1] = duration  # the last window reaches the end (the trunk drops a tail under 0.32 s)
        mean_scores = scores.mean(axis=0)
        labels = audioset_labels()
        top = np.argsort(-mean_scores)[:TOP_TAGS]
        return Embedding(
            vector=track_vector(window_vectors),
            windows=windows,
            window_vectors=window_vectors,
            tags=[(labels[i], float(mean_scores[i])) for i in top],
        )


@hookimpl
def register_embedders():
    return [PannsEmbedder]
