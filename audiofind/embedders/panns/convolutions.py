"""Fast 3x3 convolutions for Cnn14 on CPU: Winograd for blocks 3-5, one matmul per convolution for block 6.

A 3x3 convolution can produce each 4x4 output tile from a 6x6 input tile with 36 multiplications per
(input, output) channel pair instead of 144 (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2016): the input tiles and the weights are moved into the transform domain, multiplied there as
36 matrix products (channels in x channels out, which run at the matmul's full speed), and moved back.
The transforms are memory traffic, so this pays where channels are many and the picture is small: Cnn14's
blocks 3-5 (BENCHMARKS.md, "How float32 passes 2.5x"); blocks 1-2 have too few channels, and block 6's
transformed weights would take 900 MB. F(2x2, 3x3) (16 products instead of 36, weights 16/9 instead of 4x
the direct ones) trades some of the gain for memory. In float32 the result equals the direct convolution
within float rounding; in bfloat16 it is as close to float32 as bfloat16's direct convolution.
"""

import torch
import torch.nn.functional as F

# The transforms (B^T, G, A^T) of F(4x4, 3x3) and F(2x2, 3x3), by output tile size.
TRANSFORMS = {
    4: (
        [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    ),
    2: (
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]],
    ),
}

SLICE = 128  # output channels converted at a time: a whole 1024x1024 layer's intermediates take 150 MB each


def fold_batch_norm(state, prefix, eps=1e-5):
    """(scale, shift) per channel such that the batch norm ``prefix`` of ``state`` (a state dict) in eval mode
    is y * scale + shift."""
    scale = state[f"{prefix}.weight"].float() / torch.sqrt(state[f"{prefix}.running_var"].float() + eps)
    return scale, state[f"{prefix}.bias"].float() - state[f"{prefix}.running_mean"].float() * scale


class WinogradConv3x3:
    """Winograd F(tile x tile, 3x3): a 3x3, stride 1, padding 1 convolution without bias, then a per-channel
    ``scale`` and ``shift`` (a folded batch norm) and ReLU, on channels-last (N, H, W, C) tensors.

    ``tile_rows`` bounds how many rows of tiles are transformed at once, so the transformed tiles stay in
    cache for layers with a large picture (deep layers take all rows, to read their weights once).
    The constructor takes the transformed weights (``transform``), which may be memory-mapped from a file.
    """

    def __init__(self, weight, bias, tile_rows: int):
        self.weight, self.bias = weight, bias  # (size, in, out) in the transform domain, (out,)
        self.tile = {36: 4, 16: 2}[weight.shape[0]]
        b_t, _, a_t = (torch.tensor(m, dtype=weight.dtype) for m in TRANSFORMS[self.tile])
        self.b_t, self.a_t, self.tile_rows = b_t, a_t, tile_rows

    @staticmethod
    def transform(weight, scale, shift, dtype=torch.float32, tile: int = 4):
        """(weight, bias) for the constructor from a (out, in, 3, 3) convolution and its folded batch norm."""
        g = torch.tensor(TRANSFORMS[tile][1], dtype=torch.float32)
        out_channels, in_channels = weight.shape[:2]
        size = (tile + 2) ** 2
        transformed = torch.empty(size, in_channels, out_channels, dtype=dtype)
        for k in range(0, out_channels, SLICE):
            part = weight[k:k + SLICE].detach().float() * scale[k:k + SLICE, None, None, None]
            transformed[:, :, k:k + SLICE] = (g @ part @ g.T).permute(2, 3, 1, 0).reshape(size, in_channels, -1)
        return transformed, shift.detach().to(dtype).clone()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        k = self.weight.shape[2]
        b_t, a_t, m, a = self.b_t, self.a_t, self.tile, self.tile + 2  # m, a: output and input tile sizes
        tiles_h, tiles_w = -(-h // m), -(-w // m)
        padded = F.pad(x, (0, 0, 1, m * tiles_w + 1 - w, 1, m * tiles_h + 1 - h))
        s_n, s_h, s_w, s_c = padded.stride()
        out = torch.empty(n, m * tiles_h, m * tiles_w, k, dtype=x.dtype)
        for row in range(0, tiles_h, self.tile_rows):
            rows = min(self.tile_rows, tiles_h - row)
            p = n * rows * tiles_w
            tiles = padded[:, m * row:].as_strided((a, a, n, rows, tiles_w, c), (s_h, s_w, s_n, m * s_h, m * s_w, s_c))
            v = torch.matmul(b_t, (b_t @ tiles.reshape(a, a * p * c)).view(a, a, p * c)).view(a * a, p, c)
            products = torch.bmm(v, self.weight)  # (a*a, p, k): the products in the transform domain
            y = torch.matmul(a_t, (a_t @ products.view(a, a * p * k)).view(m, a, p * k))
            target = out[:, m * row:m * (row + rows)].view(n, rows, m, tiles_w, m, k)
            torch.add(y.view(m, m, n, rows, tiles_w, k).permute(2, 3, 0, 4, 1, 5), self.bias, out=target)
        return torch.relu_(out[:, :h, :w])


class GemmConv3x3:
    """The same convolution, scale, shift and ReLU as one matrix product over the 3x3 neighbourhoods (im2col).

    For Cnn14's block 6 (a 2-wide picture, 1024-2048 channels) this beats oneDNN's direct convolution in
    float32 and bfloat16 (BENCHMARKS.md): the direct kernels have too few positions to fill.
    """

    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias  # (9 * in, out), (out,): from ``transform``

    @staticmethod
    def transform(weight, scale, shift, dtype=torch.float32):
        out_channels, in_channels = weight.shape[:2]
        matrix = torch.empty(9 * in_channels, out_channels, dtype=dtype)
        for k in range(0, out_channels, SLICE):
            part = weight[k:k + SLICE].detach().float() * scale[k:k + SLICE, None, None, None]
            matrix[:, k:k + SLICE] = part.permute(2, 3, 1, 0).reshape(9 * in_channels, -1)
        return matrix, shift.detach().to(dtype).clone()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        padded = F.pad(x, (0, 0, 1, 1, 1, 1))
        s_n, s_h, s_w, s_c = padded.stride()
        columns = padded.as_strided((n, h, w, 3, 3, c), (s_n, s_h, s_w, s_h, s_w, s_c)).reshape(n * h * w, 9 * c)
        return torch.relu_(torch.addmm(self.bias, columns, self.weight)).view(n, h, w, -1)
