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


def load_cnn14(path: Path, device="cpu"):
    """Cnn14 with the weights of an official-layout checkpoint ``{"model": state_dict}``, in eval mode."""
    import torch

    model = build_cnn14().to("meta")  # its random initial weights are freed before the checkpoint's are read
    release_free_memory()
    try:
        try:  # memory-mapped: the engine reads the trunk's weights once into its own layout (see FastTrunk)
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-zip) format
        state = checkpoint["model"] if isinstance(checkpoint, dict) and "model" in checkpoint else None
        if state is None:
            raise ValueError('not the official layout {"model": state_dict}')
        model.load_state_dict(state, assign=True)
    except Exception as exc:  # a truncated or foreign file fails in many ways; all mean the same to the user
        raise EmbedderUnavailable(f"cannot load the PANNs checkpoint {path}: {exc}") from exc
    return model.eval().to(device)


def drop_trunk(model):
    """Let go of the conv blocks (~310 MB) once an engine holds its own copy of them.

    The other weights are copied out of the checkpoint's memory map, so that the map (with the pages of
    the trunk that the engine read) is released too.
    """
    for i in range(1, 7):
        setattr(model, f"conv_block{i}", None)
    model.load_state_dict({name: tensor.clone() for name, tensor in model.state_dict().items()}, assign=True)
    release_free_memory()


def forget_pages(*tensors):
    """Drop the resident pages of checkpoint tensors that are about to be released.

    A memory-mapped checkpoint (load_cnn14) stays mapped until its last tensor is gone (drop_trunk), so
    pages read while converting a block would stay resident until then. Harmless for tensors that are not
    mapped: their whole pages read back as zeros, and nothing reads them again.
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


def trunk_module(model, blocks=6):
    """Cnn14 from log-mel to the 2048-channel feature sequence: bn0, conv blocks 1-6, mean over frequency.

    With ``blocks`` < 6, only the first blocks: their pooled activations, (batch, channels, frames, mel).
    """
    import torch

    class Trunk(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn0 = model.bn0
            self.blocks = torch.nn.ModuleList([getattr(model, f"conv_block{i + 1}") for i in range(blocks)])

        def forward(self, logmel):  # (batch, 1, frames, 64) -> (batch, 2048, frames // 32) for all blocks
            x = self.bn0(logmel.transpose(1, 3)).transpose(1, 3)
            for i, block in enumerate(self.blocks):
                x = block(x, pool_size=(2, 2) if i < 5 else (1, 1), pool_type="avg")
            return x.mean(dim=3) if blocks == 6 else x

    return Trunk().eval()


class LogmelStream:
    """Cnn14's log-mel frames computed block by block, equal to its whole-file spectrogram.

    Cnn14 reflect-pads the signal by n_fft/2 at both ends (center=True); we pad only at the real track
    edges and carry the overlap between blocks, then apply the same STFT (hann, 1024, hop 320) and the
    model's own mel layer.
    """

    def __init__(self, model, device):
        self.model = model
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
            power = spectrum.real ** 2 + spectrum.imag ** 2  # (513, n)
            logmel = self.model.logmel_extractor(power.T)  # (n, 64)
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


def pool_windows(model, sequence: np.ndarray, spans):
    """Cnn14's clip head on each window: max + mean over time, fc1 + relu (embedding), fc_audioset + sigmoid."""
    import torch

    fc1 = model.fc1
    with torch.inference_mode():
        seq = torch.from_numpy(sequence).to(fc1.weight.device, torch.float32)
        pooled = torch.stack([seq[s:e].max(dim=0).values + seq[s:e].mean(dim=0) for s, e in spans])
        embedding = torch.relu(fc1(pooled))
        scores = torch.sigmoid(model.fc_audioset(embedding))
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


def fused_trunk(model, blocks=6):
    """The trunk for inference: each conv with its batch norm folded in, channels-last (oneDNN's native layout).

    Equal to trunk_module() within float rounding; it saves a pass over the largest tensors per layer. The
    input is cast to the convolutions' type after bn0, so their type may differ from bn0's.
    """
    import copy

    import torch
    import torch.nn.functional as F
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    parts = [getattr(model, f"conv_block{i + 1}") for i in range(blocks)]

    class FusedTrunk(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn0 = copy.deepcopy(model.bn0)
            self.convs = torch.nn.ModuleList(
                [fuse_conv_bn_eval(b.conv1, b.bn1) for b in parts] + [fuse_conv_bn_eval(b.conv2, b.bn2) for b in parts]
            )

        def forward(self, logmel):
            x = self.bn0(logmel.transpose(1, 3)).transpose(1, 3)
            x = x.to(self.convs[0].weight.dtype).contiguous(memory_format=torch.channels_last)
            for i in range(blocks):
                x = F.relu_(self.convs[i](x))
                x = F.relu_(self.convs[blocks + i](x))
                if i < 5:
                    x = F.avg_pool2d(x, 2)
            return x.mean(dim=3) if blocks == 6 else x

    return FusedTrunk().eval().to(memory_format=torch.channels_last)


def torch_runner(model, device, precision=None):
    """The trunk in PyTorch; with ``precision`` bfloat16/float16 its weights and activations are in that type.

    (Converting the weights once measured ~7 % faster than autocast, which casts them on every call.)
    """
    import torch

    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision, torch.float32)
    trunk = fused_trunk(model).to(device, dtype)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return trunk(torch.from_numpy(batch).to(device, dtype)).float().cpu().numpy()

    return run


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


def export_trunk(model, checkpoint: Path, blocks=6) -> Path:
    """The trunk (or its first ``blocks``) as ONNX, dynamic batch and length, exported once and cached beside
    the checkpoint.

    The weights go to a separate ``.data`` file, which ONNX Runtime maps instead of copying out of the
    protobuf: that takes ~350 MB off the peak memory of loading the session.
    """
    import onnx
    import torch

    target = cache_path(checkpoint, "trunk.onnx" if blocks == 6 else f"trunk-blocks1-{blocks}.onnx")
    data = target.with_name(target.name + ".data")
    if target.exists() and data.exists():
        return target
    trunk = trunk_module(model, blocks).to("cpu")
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

    Blocks 1-2: ONNX Runtime's float32 convolutions (near this CPU's float32 peak) or oneDNN's bfloat16
    ones. Blocks 3-5: Winograd. Block 6: one matmul per convolution. On a 60 s chunk (2 cores) float32
    measured ~0.96 s against 1.21 s for the whole trunk in ONNX Runtime (equal within 2e-6), bfloat16
    ~0.55 s against 0.77 s for PyTorch's bfloat16 trunk (cosine 0.99998 to float32).
    """

    # Per conv of blocks 3-5 (see WinogradConv3x3). In float32 block 5 takes 2x2 tiles: 4x4 ones would
    # make its weights 226 MB instead of 101 MB (the worker's peak memory) for ~5 % more speed.
    FLOAT32_TILES = (4, 4, 4, 4, 2, 2)
    TILE_ROWS = (16, 32, 64, 128, 1 << 20, 1 << 20)
    HEAD_PIECE = 1024  # log-mel frames per ONNX Runtime run of blocks 1-2 (a multiple of their pooling, 4)
    HEAD_MARGIN = 16  # frames on each side of a piece: more than blocks 1-2 see (their receptive field is 10)

    def __init__(self, model, checkpoint: Path, dtype):
        import torch

        from audiofind.embedders.convolutions import GemmConv3x3, WinogradConv3x3, fold_batch_norm

        def layers(*blocks):  # (conv, bn) pairs; each block's weights leave RAM once it is converted
            for i in blocks:
                block = getattr(model, f"conv_block{i}")
                setattr(model, f"conv_block{i}", None)
                yield block.conv1, block.bn1
                yield block.conv2, block.bn2
                forget_pages(block.conv1.weight, block.conv2.weight)

        self.dtype = dtype
        with torch.no_grad():
            if dtype == torch.float32:
                self.head = onnx_session(export_trunk(model, checkpoint, blocks=2), arena=True, spinning=False)
            else:
                self.head = fused_trunk(model, blocks=2)  # bn0 stays float32, the convolutions take dtype
                self.head.convs.to(dtype)
            for _ in layers(1, 2):  # the head holds its own copy now
                pass
            tiles = self.FLOAT32_TILES if dtype == torch.float32 else (4,) * 6
            self.middle = [WinogradConv3x3(conv.weight, *fold_batch_norm(bn), rows, dtype, tile)
                           for (conv, bn), tile, rows in zip(layers(3, 4, 5), tiles, self.TILE_ROWS)]
            self.tail = [GemmConv3x3(conv.weight, *fold_batch_norm(bn), dtype) for conv, bn in layers(6)]

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

        float_model = export_trunk(self.embedder.model, self.embedder.checkpoint)

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
        model = self.embedder.model
        for clip in held_out:
            ours = session.run(None, {"logmel": clip})[0][0].T
            reference = self.float_run(clip)[0].T
            a = pool_windows(model, reference, [(0, len(reference))])[0][0]
            b = pool_windows(model, ours, [(0, len(ours))])[0][0]
            cosines.append(float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)))
        report = {"cosine": float(np.mean(cosines)), "min_cosine": float(np.min(cosines)),
                  "held_out_clips": len(held_out), "calibration_clips": len(calibration),
                  "tracks": len(self.tracks)}
        self.report_path.write_text(json.dumps(report))
        self.tracks = []
        self._use(report)
        return report["cosine"]


class PannsEmbedder(Embedder):
    name = "panns"
    version = "cnn14-1"
    sample_rate = 32000
    window_dim = 2048
    window_seconds = WINDOW_STEPS * STEP_SECONDS
    hop_seconds = HOP_STEPS * STEP_SECONDS

    def __init__(self, config):
        super().__init__(config)
        self.model = None
        self.device = None
        self._run = None
        self._lock = threading.Lock()

    @property
    def checkpoint(self) -> Path:
        return checkpoint_path(self.config)

    def check(self) -> None:
        self._load()

    def _load(self):
        with self._lock:
            if self.model is not None:
                return self.model
            path = self.checkpoint
            if not path.is_file():
                url = self.config.get("PANNS_CHECKPOINT_URL") or ""
                if not url:
                    raise EmbedderUnavailable(_missing_message(path, "the official Cnn14 checkpoint", "no URL set"))
                download_checkpoint(url, path)
            self.device = resolve_device(self.config.get("DEVICE", "auto"))
            model = load_cnn14(path, self.device)
            self._run = self._make_runner(model)
            if not isinstance(self._run, Int8Trunk):  # int8 exports the trunk again when it calibrates
                drop_trunk(model)
            self.model = model
            return model

    def _make_runner(self, model):
        precision = (self.config.get("PANNS_PRECISION") or "auto").lower()
        engine = (self.config.get("PANNS_ENGINE") or "auto").lower()
        if precision not in PRECISIONS:
            raise EmbedderUnavailable(
                f"AUDIOFIND_PANNS_PRECISION={precision!r} is not one of {', '.join(PRECISIONS)}"
            )
        if precision == "auto":  # bfloat16 where the CPU computes it natively: cosine 0.99998 to float32
            precision = "bfloat16" if self.device.type == "cpu" and cpu_has_bf16() else "float32"
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
        if precision == "int8":
            if cuda:
                raise EmbedderUnavailable("AUDIOFIND_PANNS_PRECISION=int8 runs on CPU only; on a GPU use float16")
            return Int8Trunk(self, torch_runner(model, self.device))
        import torch

        if cuda or engine == "torch":
            return torch_runner(model, self.device, None if precision == "float32" else precision)
        if precision == "bfloat16":
            return FastTrunk(model, self.checkpoint, torch.bfloat16)
        if not _has_onnxruntime():
            return torch_runner(model, self.device)
        try:
            if engine == "onnx":
                return onnx_runner(export_trunk(model, self.checkpoint))
            return FastTrunk(model, self.checkpoint, torch.float32)
        except EmbedderUnavailable:
            if engine != "auto":
                raise
            warnings.warn("ONNX export of the Cnn14 trunk failed; using PyTorch", RuntimeWarning)
            return torch_runner(model, self.device)

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
        model = self._load()
        stream = LogmelStream(model, self.device)
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
        embeddings, scores = pool_windows(self.model, sequence, spans)
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
