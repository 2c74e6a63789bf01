"""Which device, precision and engine run the trunk: the settings as configured, or with precision ``auto``
every candidate timed on this machine (autotune.py) and the fastest that stays close to float32 chosen."""

import os
import platform
import warnings
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from audiofind.embedders.base import EmbedderUnavailable
from audiofind.embedders.panns import autotune
from audiofind.embedders.panns.checkpoint import CONVERTER_VERSION, cache_path
from audiofind.embedders.panns.engines import (FastTrunk, cpu_has_bf16, export_trunk, has_onnxruntime, onnx_runner,
                                               torch_runner)
from audiofind.embedders.panns.frontend import pool_windows
from audiofind.embedders.panns.int8 import Int8Trunk, passed_report
from audiofind.embedders.panns.stream import HOP, MARGIN, LogmelStream

PRECISIONS = ("auto", "float32", "bfloat16", "float16", "int8")
ENGINES = ("auto", "winograd", "onnx", "torch")  # on CPU; auto is winograd (FastTrunk) when ONNX Runtime works
# auto: a candidate's probe embedding must reach this cosine to float32's. On a real catalog bfloat16 kept
# "more like this" top-10s and int8 did not (BENCHMARKS.md, int8: agreement with float32 rankings): the gate
# sits between the cosines they reach.
AUTO_MIN_COSINE = 0.9999
PROBE_FRAMES = 2048 + 2 * MARGIN  # auto: log-mel frames (~23 s) each candidate is timed on


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



def settings(config, device):
    """(precision, engine) as configured, checked against each other and the device."""
    precision = (config.get("PANNS_PRECISION") or "auto").lower()
    engine = (config.get("PANNS_ENGINE") or "auto").lower()
    if precision not in PRECISIONS:
        raise EmbedderUnavailable(
            f"AUDIOFIND_PANNS_PRECISION={precision!r} is not one of {', '.join(PRECISIONS)}"
        )
    if engine not in ENGINES:
        raise EmbedderUnavailable(f"AUDIOFIND_PANNS_ENGINE={engine!r} is not one of {', '.join(ENGINES)}")
    cuda = device.type == "cuda"
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


def candidates(device, engine: str, checkpoint) -> list:
    """The (precision-engine) labels ``auto`` times on ``device``, the float32 reference first."""
    if device.type == "cuda":
        return ["float32-torch", "float16-torch", "bfloat16-torch"]
    engines = ["winograd", "torch"] if engine == "auto" else [engine]
    if not has_onnxruntime():
        engines = [e for e in engines if e == "torch"] or ["torch"]
    labels = [f"float32-{e}" for e in engines]
    if cpu_has_bf16():
        labels += [f"bfloat16-{e}" for e in engines if e != "onnx"]
    if engine == "auto" and passed_report(checkpoint) is not None:
        labels.append("int8-onnx")  # only once this catalog's calibration has passed its self-check
    return labels


def build(embedder, label):
    """The runner for a precision-engine label (``candidates``); engine "onnx" for int8 is its QDQ graph."""
    import torch

    checkpoint, state, device = embedder.checkpoint, embedder._state, embedder.device
    precision, engine = label.split("-")
    if precision == "int8":
        return Int8Trunk(embedder, torch_runner(checkpoint, state, device))
    if device.type == "cuda" or engine == "torch":
        return torch_runner(checkpoint, state, device, None if precision == "float32" else precision)
    if precision == "bfloat16":
        return FastTrunk(checkpoint, state, torch.bfloat16)
    if not has_onnxruntime():
        return torch_runner(checkpoint, state, device)
    try:
        if engine == "onnx":
            return onnx_runner(export_trunk(checkpoint, state))
        return FastTrunk(checkpoint, state, torch.float32)
    except EmbedderUnavailable:
        if (embedder.config.get("PANNS_ENGINE") or "auto").lower() != "auto":
            raise
        warnings.warn("ONNX export of the Cnn14 trunk failed; using PyTorch", RuntimeWarning)
        return torch_runner(checkpoint, state, device)


def choose(embedder, front):
    """(runner, choice) for ``embedder`` (its device set): what is configured, or with precision auto the fastest
    candidate, built by ``embedder._build``. ``choice``: {precision, engine, how, ...} (PannsEmbedder.summary)."""
    precision, engine = settings(embedder.config, embedder.device)
    if precision != "auto":
        if engine == "auto":
            engine = "onnx" if precision == "int8" else "winograd"
        return embedder._build(f"{precision}-{engine}"), {"precision": precision, "engine": engine, "how": "configured"}
    checkpoint, device = embedder.checkpoint, embedder.device
    labels = candidates(device, engine, checkpoint)
    key = {"cpu": cpu_identity() if device.type == "cpu" else gpu_name(device),
           "checkpoint": cache_path(checkpoint, "").name, "versions": versions(),
           "int8": passed_report(checkpoint)}

    def similarity(output, reference):
        ours = pool_windows(front, output[0].T, [(0, output.shape[2])])[0][0]
        theirs = pool_windows(front, reference[0].T, [(0, reference.shape[2])])[0][0]
        return ours @ theirs / max(np.linalg.norm(ours) * np.linalg.norm(theirs), 1e-12)

    label, runner, decision = autotune.choose(
        cache_path(checkpoint, "engine.json"), key, labels, labels[0], embedder._build,
        lambda: probe_logmel(front), similarity, AUTO_MIN_COSINE,
    )
    precision, engine = label.split("-")
    return runner, dict(decision, precision=precision, engine=engine)


def gpu_name(device):
    import torch

    return torch.cuda.get_device_name(device)


def cpu_identity() -> str:
    """The CPU model, the cores this process may use and the instruction set PyTorch dispatches to."""
    import torch

    model = ""
    try:
        with open("/proc/cpuinfo") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model or platform.processor() or platform.machine()}, {cores} cores, {torch.backends.cpu.get_cpu_capability()}"


def versions() -> dict:
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

