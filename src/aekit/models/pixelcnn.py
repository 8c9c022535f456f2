"""A gated PixelCNN over a grid of discrete codes: the learned prior of the VQ-VAE.

van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu 2016, "Conditional Image Generation
with PixelCNN Decoders" (section 2), used as the prior over VQ-VAE codes in van den Oord, Vinyals &
Kavukcuoglu 2017 (section 3.3). It models a grid of code indices c (N, H, W) autoregressively in
raster order,

    p(c) = prod_{i, j} p(c_ij | c_<i, c_i,<j),

with two stacks per layer that together see every earlier position and no later one (no blind spot):
the vertical stack sees the rows above (a (k//2 + 1) x k convolution padded above only, so that row i
reads rows i - k//2 .. i, its current row masked in the first layer), the horizontal stack the earlier
positions of the current row (1 x (k//2 + 1), its current column masked in the first layer), and the
vertical stack feeds the horizontal one. Each stack's output is the gate tanh(a) * sigmoid(b). The
first layer is 7 x 7 (as in the paper), the rest 3 x 3 with a residual connection on the horizontal
stack. A grid of one row (the codes of an MLP VQ-VAE) has no rows above to see: its layers have the
horizontal stack only, a causal sequence model whose later layers are dilated 1, 2, 4, ... as in
WaveNet (van den Oord et al. 2016), so that L layers reach 2^(L-1) + 2 codes back rather than L + 2.
On a taller grid the reach is L + 2 rows and columns (``prior_covers`` says whether a grid is covered).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedLayer(nn.Module):
    """One gated layer: (vertical, horizontal) features (N, C, H, W) each -> the same."""

    def __init__(self, channels: int, kernel: int, first: bool, vertical: bool = True, dilation: int = 1):
        super().__init__()
        half = kernel // 2
        self.first = first
        self.half = half
        self.dilation = dilation   # of the horizontal stack
        self.has_vertical = vertical
        if vertical:
            self.vertical = nn.Conv2d(channels, 2 * channels, (half + 1, kernel))
            self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal = nn.Conv2d(channels, 2 * channels, (1, half + 1), dilation=(1, dilation))
        self.h_out = nn.Conv2d(channels, channels, 1)
        if first:  # causality of the first layer: the current row (vertical) and column (horizontal) unseen
            if vertical:
                self.register_buffer("v_mask", torch.ones_like(self.vertical.weight))
                self.v_mask[:, :, -1] = 0
            self.register_buffer("h_mask", torch.ones_like(self.horizontal.weight))
            self.h_mask[:, :, :, -1] = 0

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.half
        wh = self.horizontal.weight * self.h_mask if self.first else self.horizontal.weight
        # Zero padding of k//2 rows above only (and k//2 columns each side) makes output row i read input
        # rows i - k//2 .. i, the kernel's last row being row i; k//2 columns on the left only make
        # output column j read columns j - k//2 .. j. Outputs keep the input's size.
        h_pre = F.conv2d(F.pad(h, (k * self.dilation, 0, 0, 0)), wh, self.horizontal.bias, dilation=(1, self.dilation))
        if self.has_vertical:
            wv = self.vertical.weight * self.v_mask if self.first else self.vertical.weight
            v_pre = F.conv2d(F.pad(v, (k, k, k, 0)), wv, self.vertical.bias)
            v, h_pre = _gate(v_pre), h_pre + self.v_to_h(v_pre)
        h_gated = _gate(h_pre)
        h_out = self.h_out(h_gated)
        return v, (h_out if self.first else h_out + h)


def prior_covers(grid: tuple[int, int], layers: int) -> bool:
    """Whether a GatedPixelCNN of ``layers`` layers (first kernel 7) lets every position of ``grid``
    see every position before it: a reach of 2^(layers-1) + 2 codes on one row, else layers + 2 rows
    and columns."""
    h, w = grid
    if h == 1:
        return 2 ** (layers - 1) + 2 >= w - 1
    return layers + 2 >= max(h, w) - 1


def min_prior_layers(grid: tuple[int, int]) -> int:
    """The fewest layers for which ``prior_covers(grid, layers)``."""
    layers = 1
    while not prior_covers(grid, layers):
        layers += 1
    return layers


def _gate(a: torch.Tensor) -> torch.Tensor:
    x, g = a.chunk(2, dim=1)
    return torch.tanh(x) * torch.sigmoid(g)


class GatedPixelCNN(nn.Module):
    """p(c) over code grids c (N, H, W) with values in 0..num_codes-1.

    ``logits(c)`` -> (N, num_codes, H, W), position (i, j) a function of the codes before it only;
    ``log_prob(c)`` -> (N,) in nats; ``sample(n, (H, W))`` draws grids position by position.
    """

    def __init__(self, num_codes: int, channels: int = 64, layers: int = 6, first_kernel: int = 7, rows: int = 2):
        super().__init__()
        self.num_codes = num_codes
        self.rows = rows   # the grid's height; 1: no vertical stack
        self.embed = nn.Embedding(num_codes, channels)
        self.layers = nn.ModuleList(
            [GatedLayer(channels, first_kernel, first=True, vertical=rows > 1)]
            + [GatedLayer(channels, 3, first=False, vertical=rows > 1, dilation=2 ** i if rows == 1 else 1)
               for i in range(layers - 1)]
        )
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, num_codes, 1))

    def logits(self, codes: torch.Tensor) -> torch.Tensor:
        return self.logits_of_embedded(self.embed(codes).permute(0, 3, 1, 2))   # (N, C, H, W) in

    def logits_of_embedded(self, x: torch.Tensor) -> torch.Tensor:
        """The logits (N, K, H, W) from embedded codes (N, C, H, W)."""
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h)
        return self.out(h)                                  # (N, K, H, W)

    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """log p(c) summed over the grid, (N, H, W) -> (N,)."""
        nll = F.cross_entropy(self.logits(codes), codes, reduction="none")   # (N, H, W)
        return -nll.reshape(codes.shape[0], -1).sum(1)

    @torch.no_grad()
    def sample(self, n: int, grid: tuple[int, int], generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """n grids (n, H, W) drawn in raster order, one forward pass per position."""
        device = self.embed.weight.device
        codes = torch.zeros(n, *grid, dtype=torch.long, device=device)
        for i in range(grid[0]):
            for j in range(grid[1]):
                probs = torch.softmax(self.logits(codes)[:, :, i, j].float() / temperature, dim=1)
                codes[:, i, j] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return codes
