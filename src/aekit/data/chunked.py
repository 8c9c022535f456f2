"""Whole-data checks and statistics computed a block of rows at a time.

A memory-mapped data set may be larger than memory: it is then read once, block by block, and no
temporary the size of the data (a boolean mask, a float64 copy) is ever made. In-memory tensors
take the same path, which also keeps the peak memory of the checks at one block.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import Tensor

from aekit.data.pages import prefetch

BLOCK_BYTES = 32 << 20  # 32 MiB of input per block


def row_blocks(x: Tensor) -> Iterator[Tensor]:
    """Consecutive views ``x[s : s + rows]`` of about ``BLOCK_BYTES`` each (at least one row)."""
    n = int(x.shape[0])
    row_bytes = max(1, math.prod(x.shape[1:]) * x.element_size())
    rows = max(1, BLOCK_BYTES // row_bytes)
    for start in range(0, n, rows):
        block = x[start : start + rows]
        prefetch(block)  # a memory-mapped block is read in one request (no-op for data in memory)
        yield block


def count_nonfinite(x: Tensor, allow_nan: bool = False) -> int:
    """How many values of ``x`` are NaN or infinite (with ``allow_nan``: infinite) (0 for integer tensors)."""
    if not x.is_floating_point():
        return 0
    if allow_nan:
        return sum(int(torch.isinf(b).sum()) for b in row_blocks(x))
    return sum(int((~torch.isfinite(b)).sum()) for b in row_blocks(x))


def value_range(x: Tensor, ignore_nan: bool = False) -> tuple[float, float]:
    """``(min, max)`` over every value of a non-empty ``x`` (with ``ignore_nan``, over its other values)."""
    lo, hi = float("inf"), float("-inf")
    for b in row_blocks(x):
        if ignore_nan:
            b = b[~torch.isnan(b)]
            if b.numel() == 0:
                continue
        lo, hi = min(lo, float(b.min())), max(hi, float(b.max()))
    return lo, hi


def all_binary(x: Tensor) -> bool:
    """True when every value of ``x`` is exactly 0 or 1."""
    return all(bool(((b == 0) | (b == 1)).all()) for b in row_blocks(x))


def feature_mean(x: Tensor, ignore_nan: bool = False) -> Tensor:
    """Per-feature mean (D,) of ``x`` (N, *shape) flattened to (N, D), summed in float64; with
    ``ignore_nan`` the mean of each feature's other values (NaN for a feature with none)."""
    total = torch.zeros(math.prod(x.shape[1:]), dtype=torch.float64, device=x.device)
    if not ignore_nan:
        for b in row_blocks(x):
            total += b.reshape(b.shape[0], -1).sum(0, dtype=torch.float64)
        return total / max(1, int(x.shape[0]))
    count = torch.zeros_like(total)
    for b in row_blocks(x):
        flat = b.reshape(b.shape[0], -1)
        total += flat.nan_to_num(0.0).sum(0, dtype=torch.float64)
        count += (~torch.isnan(flat)).sum(0)
    return total / count


def feature_std(x: Tensor, mean: Tensor) -> Tensor:
    """Per-feature population standard deviation (D,) about ``mean`` (two passes, float64)."""
    total = torch.zeros_like(mean)
    for b in row_blocks(x):
        total += (b.reshape(b.shape[0], -1).to(torch.float64) - mean).square().sum(0)
    return (total / max(1, int(x.shape[0]))).sqrt()


def feature_range(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-feature ``(min, max)`` (D,) of ``x`` (N, *shape) flattened to (N, D), as float64."""
    lo = hi = None
    for b in row_blocks(x):
        flat = b.reshape(b.shape[0], -1)
        b_lo, b_hi = flat.amin(0).to(torch.float64), flat.amax(0).to(torch.float64)
        lo = b_lo if lo is None else torch.minimum(lo, b_lo)
        hi = b_hi if hi is None else torch.maximum(hi, b_hi)
    return lo, hi
