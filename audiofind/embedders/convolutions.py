"""Fast 3x3 convolutions for Cnn14 on CPU: Winograd F(4x4, 3x3) for blocks 3-5, one matmul for block 6.

A 3x3 convolution can produce each 4x4 output tile from a 6x6 input tile with 36 multiplications per
(input, output) channel pair instead of 144 (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2016): the input tiles and the weights are moved into the transform domain, multiplied there as
36 matrix products (channels in x channels out, which run at the matmul's full speed), and moved back.
The transforms are memory traffic, so this pays where channels are many and the picture is small: on
this 2-core CPU it runs Cnn14's blocks 3-5 at about twice the speed of a direct convolution; blocks 1-2
have too few channels, and block 6's transformed weights would take 900 MB. In float32 the
result equals the direct convolution within ~1e-6 relative; in bfloat16 it measured cosine 0.99996 to
float32 over the trunk, as close as bfloat16's direct convolution.
"""

import torch
import torch.nn.functional as F

_B_T = torch.tensor([
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
], dtype=torch.float32)
_G = torch.tensor([
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
], dtype=torch.float32)
_A_T = torch.tensor([
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0],
    [0, 1, -1, 8, -8, 1],
], dtype=torch.float32)


class WinogradConv3x3:
    """A 3x3, stride 1, padding 1 convolution + bias + ReLU on channels-last (N, H, W, C) tensors.

    ``tile_rows`` bounds how many rows of tiles are transformed at once, so the transformed tiles stay in
    cache for layers with a large picture (deep layers take all rows, to read their weights once).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, tile_rows: int, dtype=torch.float32):
        weight = weight.detach().float()
        out_channels, in_channels = weight.shape[:2]
        transformed = _G @ weight @ _G.T  # (K, C, 6, 6)
        self.weight = transformed.permute(2, 3, 1, 0).reshape(36, in_channels, out_channels).to(dtype).contiguous()
        self.bias = bias.detach().to(dtype).clone()
        self.b_t, self.a_t = _B_T.to(dtype), _A_T.to(dtype)
        self.tile_rows = tile_rows

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        k = self.weight.shape[2]
        b_t, a_t = self.b_t, self.a_t
        tiles_h, tiles_w = -(-h // 4), -(-w // 4)
        padded = F.pad(x, (0, 0, 1, 4 * tiles_w + 1 - w, 1, 4 * tiles_h + 1 - h))
        s_n, s_h, s_w, s_c = padded.stride()
        out = torch.empty(n, 4 * tiles_h, 4 * tiles_w, k, dtype=x.dtype)
        for row in range(0, tiles_h, self.tile_rows):
            rows = min(self.tile_rows, tiles_h - row)
            p = n * rows * tiles_w
            tiles = padded[:, 4 * row:].as_strided((6, 6, n, rows, tiles_w, c), (s_h, s_w, s_n, 4 * s_h, 4 * s_w, s_c))
            v = torch.matmul(b_t, (b_t @ tiles.reshape(6, 6 * p * c)).view(6, 6, p * c)).view(36, p, c)
            m = torch.bmm(v, self.weight)  # (36, p, k): the 36 products in the transform domain
            y = torch.matmul(a_t, (a_t @ m.view(6, 6 * p * k)).view(4, 6, p * k))
            target = out[:, 4 * row:4 * (row + rows)].view(n, rows, 4, tiles_w, 4, k)
            torch.add(y.view(4, 4, n, rows, tiles_w, k).permute(2, 3, 0, 4, 1, 5), self.bias, out=target)
        return torch.relu_(out[:, :h, :w])


class GemmConv3x3:
    """The same convolution as one matrix product over the 3x3 neighbourhoods (im2col).

    For Cnn14's block 6 (a 2-wide picture, 1024-2048 channels) this measured twice oneDNN's bfloat16
    convolution: the product is one large matmul, while the direct kernel has too few positions to fill.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, dtype=torch.float32):
        out_channels, in_channels = weight.shape[:2]
        self.weight = weight.detach().permute(2, 3, 1, 0).reshape(9 * in_channels, out_channels).to(dtype).contiguous()
        self.bias = bias.detach().to(dtype).clone()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        padded = F.pad(x, (0, 0, 1, 1, 1, 1))
        s_n, s_h, s_w, s_c = padded.stride()
        columns = padded.as_strided((n, h, w, 3, 3, c), (s_n, s_h, s_w, s_h, s_w, s_c)).reshape(n * h * w, 9 * c)
        return torch.relu_(torch.addmm(self.bias, columns, self.weight)).view(n, h, w, -1)
