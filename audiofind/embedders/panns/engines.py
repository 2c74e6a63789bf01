"""The engines that run Cnn14's convolution trunk: log-mel (batch, 1, frames, 64) -> (batch, 2048, frames // 32).

- torch: the trunk with batch norms folded into the convolutions (oneDNN on CPU, with the ReLU fused in),
  in float32, bfloat16 or float16 (``torch_runner``);
- onnx: the same trunk exported to ONNX and run by ONNX Runtime (``onnx_runner``);
- winograd: fewer multiplications where that pays (``FastTrunk``, convolutions.py).

Which of them runs is choice.py's business; int8 (ONNX Runtime, calibrated) is int8.py's.
torch, and convolutions.py which imports it, are imported where they are used, so that importing the package
(the web process does, to list the embedders) does not load them.
"""

import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from audiofind.embedders.base import EmbedderUnavailable
from audiofind.embedders.panns.checkpoint import cache_path, converted
from audiofind.embedders.panns.memory import forget_pages
from audiofind.embedders.panns.stream import FRAMES_PER_STEP


def has_onnxruntime() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def cpu_has_bf16() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def fold_trunk(state, blocks=6, dtype=None) -> dict:
    """bn0 as (scale, shift) over mel bins and each conv of the first ``blocks`` with its batch norm folded in
    (weights channels-last, oneDNN's native layout, in ``dtype``; bn0 stays float32)."""
    import torch

    from audiofind.embedders.panns.convolutions import fold_batch_norm

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
    from audiofind.embedders.panns.convolutions import GemmConv3x3

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
        # two positions wide: one matrix product over the 3x3 neighbourhoods does those faster (BENCHMARKS.md).
        GEMMS = {(1, 1), (6, 1), (6, 2)}

    return FoldedTrunk().eval()


def torch_runner(checkpoint, state, device, precision=None):
    """The trunk in PyTorch; with ``precision`` bfloat16/float16 its weights and activations are in that type
    (converted once: autocast would cast them on every call)."""
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
    protobuf: a lower peak memory while the session loads.
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


def onnx_session(path: Path, arena: bool = False, spinning: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Without the arena, a 60 s chunk's activations are given back after each run: a lower peak for a little
    # speed in float32. The int8 graph (many small QDQ tensors) loses much more speed, so it keeps the arena.
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

    # Per conv of blocks 3-5 (see WinogradConv3x3). In float32 block 5 takes 2x2 tiles: 4x4 ones would more
    # than double its weights (the worker's peak memory) for little speed.
    FLOAT32_TILES = (4, 4, 4, 4, 2, 2)
    TILE_ROWS = (16, 32, 64, 128, 1 << 20, 1 << 20)
    HEAD_PIECE = 1024  # log-mel frames per ONNX Runtime run of blocks 1-2 (a multiple of their pooling, 4)
    HEAD_MARGIN = 16  # frames on each side of a piece: more than blocks 1-2 see (their receptive field is 10)
    MIDDLE = [(block, conv) for block in (3, 4, 5) for conv in (1, 2)]

    def __init__(self, checkpoint: Path, state, dtype):
        import torch

        from audiofind.embedders.panns.convolutions import GemmConv3x3, WinogradConv3x3

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

        from audiofind.embedders.panns.convolutions import GemmConv3x3, WinogradConv3x3, fold_batch_norm

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

        if self.dtype == torch.float32:  # in pieces: a whole chunk's block-1 activations would be large
            frames, pieces = batch.shape[2], []
            for start in range(0, frames, self.HEAD_PIECE):
                first = max(0, start - self.HEAD_MARGIN)
                x = self.head.run(None, {"logmel": batch[:, :, first:start + self.HEAD_PIECE + self.HEAD_MARGIN]})[0]
                keep = (min(frames, start + self.HEAD_PIECE) // 4) - start // 4
                pieces.append(torch.from_numpy(x[:, :, (start - first) // 4:][:, :, :keep]).permute(0, 2, 3, 1))
            return torch.cat(pieces, dim=1)
        return self.head(torch.from_numpy(batch)).permute(0, 2, 3, 1)
