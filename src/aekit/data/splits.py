"""In-memory splits of a data set and the helpers that make and check them.

A split is one float32 tensor ``x`` (N, *shape) in the data's raw scale ([0, 1] for images) with
optional int64 labels ``y`` (N,). Batches are slices of a permutation of it (see
:mod:`aekit.data.batches`), so there is no per-item ``Dataset`` object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aekit.data.chunked import all_binary
from aekit.errors import ConfigError


@dataclass
class Split:
    """One split: ``x`` float32 (N, *shape) and ``y`` int64 (N,) or None."""

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class DatasetSplits:
    """A loaded data set: its splits and what a model needs to know about its items."""

    name: str
    train: Split
    val: Split | None
    test: Split | None
    shape: tuple[int, ...]  # per-item shape, e.g. (1, 28, 28) or (D,)
    num_classes: int | None
    class_names: tuple[str, ...] | None
    is_binary: bool  # every value exactly 0 or 1
    memory_mapped: bool = False  # splits are views of a memory-mapped file (see aekit.data.mapped)
    columns: tuple[str, ...] | None = None  # a table's feature column names

    def __repr__(self) -> str:
        parts = (("train", self.train), ("val", self.val), ("test", self.test))
        sizes = ", ".join(f"{k}={len(s)}" for k, s in parts if s is not None)
        return (
            f"DatasetSplits({self.name!r}, {sizes}, shape={self.shape}, "
            f"num_classes={self.num_classes}, is_binary={self.is_binary}"
            f"{', memory_mapped=True' if self.memory_mapped else ''})"
        )


def check_validation(validation: int | float | None) -> None:
    """Reject a ``validation`` option that is neither None, a count >= 0, nor a fraction in [0, 1)."""
    ok = validation is None or (
        not isinstance(validation, bool)
        and (
            (isinstance(validation, (int, np.integer)) and validation >= 0)
            or (isinstance(validation, float) and 0.0 <= validation < 1.0)
        )
    )
    if not ok:
        raise ConfigError(f"validation={validation!r} is invalid; expected None, a count >= 0 or a fraction in [0, 1).")


def check_fraction(name: str, value: float) -> None:
    """Reject a split fraction outside [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{name}={value!r} is invalid; expected a fraction in [0, 1).")


def validation_count(validation: int | float, pool: int, what: str) -> int:
    """Number of validation items taken from a training pool of ``pool`` items."""
    count = int(round(validation * pool)) if isinstance(validation, float) else int(validation)
    if count >= pool:
        raise ConfigError(
            f"validation={validation!r} leaves no training items in {what} ({pool} items); expected fewer than {pool}."
        )
    return count


def tail_split(split: Split, count: int) -> tuple[Split, Split | None]:
    """Split off the LAST ``count`` items as validation (the usual MNIST 50k/10k convention)."""
    if count == 0:
        return split, None
    n = len(split) - count
    y = split.y
    return Split(split.x[:n], None if y is None else y[:n]), Split(split.x[n:], None if y is None else y[n:])


def random_partition(n: int, counts: list[int], seed: int) -> list[torch.Tensor]:
    """Seeded disjoint index sets of the given sizes, plus the remainder as the last set.

    Each set is sorted so that a split keeps the file's order; the permutation comes from a
    ``torch.Generator`` seeded with ``seed``, so the same seed gives the same split everywhere.
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out, start = [], 0
    for c in [*counts, n - sum(counts)]:
        out.append(perm[start : start + c].sort().values)
        start += c
    return out


def take(split: Split, idx: torch.Tensor) -> Split | None:
    """The items of ``split`` at ``idx`` (None when ``idx`` is empty)."""
    if idx.numel() == 0:
        return None
    return Split(split.x.index_select(0, idx), None if split.y is None else split.y.index_select(0, idx))


def concat(a: Split, b: Split | None) -> Split:
    """Two splits one after the other (labels kept only when both have them)."""
    if b is None:
        return a
    y = torch.cat([a.y, b.y]) if a.y is not None and b.y is not None else None
    return Split(torch.cat([a.x, b.x]), y)


def is_binary(*splits: Split | None) -> bool:
    """True when every value of every split is exactly 0 or 1."""
    return all(all_binary(s.x) for s in splits if s is not None)
