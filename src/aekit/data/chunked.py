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
from aekit.errors import DataError

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


NAN_HINT = "NaN marks a missing value only for models that take them (missing_values=True: vae, cvae, iwae)"


def check_finite(x: Tensor, where: str, missing_values: bool = False, nan_hint: str | None = None) -> None:
    """Refuse a data file's infinite values, and its NaN unless ``missing_values`` (NaN marks a missing
    value); ``nan_hint``: the advice given when NaN is refused (default ``NAN_HINT``)."""
    bad = count_nonfinite(x, allow_nan=missing_values)
    if bad and missing_values:
        raise DataError(f"Data file {where} has {_values(bad, 'infinite')}; expected finite numbers or NaN for a "
                        "missing value.")
    if bad:
        nan = bad - count_nonfinite(x, allow_nan=True)
        hint = f" ({nan_hint or NAN_HINT})" if nan else ""
        raise DataError(f"Data file {where} has {_values(bad, 'NaN or infinite')}; expected only finite "
                        f"numbers{hint}.")


def _values(n: int, what: str) -> str:
    return f"{n} {what} value" + ("" if n == 1 else "s")


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


def feature_std(x: Tensor, mean: Tensor, ignore_nan: bool = False) -> Tensor:
    """Per-feature population standard deviation (D,) about ``mean`` (two passes, float64); with
    ``ignore_nan`` over each feature's other values (NaN for a feature with none)."""
    total = torch.zeros_like(mean)
    count = torch.zeros_like(mean)
    for b in row_blocks(x):
        flat = b.reshape(b.shape[0], -1).to(torch.float64)
        if ignore_nan:
            seen = ~torch.isnan(flat)
            total += torch.where(seen, flat - mean, 0.0).square().sum(0)
            count += seen.sum(0)
        else:
            total += (flat - mean).square().sum(0)
    return (total / (count if ignore_nan else max(1, int(x.shape[0])))).sqrt()


def feature_range(x: Tensor, ignore_nan: bool = False) -> tuple[Tensor, Tensor]:
    """Per-feature ``(min, max)`` (D,) of ``x`` (N, *shape) flattened to (N, D), as float64; with
    ``ignore_nan`` over each feature's other values (inf and -inf for a feature with none)."""
    lo = hi = None
    for b in row_blocks(x):
        flat = b.reshape(b.shape[0], -1)
        if ignore_nan:
            seen = ~torch.isnan(flat)
            b_lo = torch.where(seen, flat, math.inf).amin(0).to(torch.float64)
            b_hi = torch.where(seen, flat, -math.inf).amax(0).to(torch.float64)
        else:
            b_lo, b_hi = flat.amin(0).to(torch.float64), flat.amax(0).to(torch.float64)
        lo = b_lo if lo is None else torch.minimum(lo, b_lo)
        hi = b_hi if hi is None else torch.maximum(hi, b_hi)
    return lo, hi
