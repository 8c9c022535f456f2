"""Mini-batches as slices of one permutation per epoch.

A call to :func:`batches` is one epoch: it draws one ``torch.randperm`` from the caller's
generator and yields ``index_select`` gathers of consecutive slices of it, so there is no Python
work per item and the order depends only on the generator's state. Dynamic binarization
(Salakhutdinov & Murray, ICML 2008) resamples every batch as ``x ~ Bernoulli(x)`` from the same
generator, so each epoch sees fresh binary images and the run stays reproducible.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from aekit.errors import ConfigError, DataError


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches one epoch over ``n`` items yields."""
    _check_batch_size(batch_size)
    return n // batch_size if drop_last else -(-n // batch_size)


def batches(
    x: Tensor,
    y: Tensor | None = None,
    *,
    batch_size: int,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    binarize_dynamic: bool = False,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield ``(xb, yb)`` for one epoch: ``xb`` (B, *x.shape[1:]), ``yb`` (B,) or None.

    With ``shuffle`` the items come in the order of one ``torch.randperm(n, generator=generator)``;
    without it, as contiguous views of ``x``. ``binarize_dynamic`` replaces each ``xb`` (values in
    [0, 1]) by a Bernoulli sample drawn from ``generator``.
    """
    _check_batch_size(batch_size)
    n = int(x.shape[0])
    if y is not None and int(y.shape[0]) != n:
        raise DataError(f"batches got {n} inputs and {int(y.shape[0])} labels; expected one label per input.")
    stop = n - n % batch_size if drop_last else n
    gen_device = generator.device if generator is not None else torch.device("cpu")
    perm = None
    if shuffle:
        # A CPU generator draws on the CPU; the indices then move to the data's device once per epoch.
        perm = torch.randperm(n, generator=generator, device=gen_device).to(x.device)  # (N,)
    for start in range(0, stop, batch_size):
        if perm is None:
            xb = x[start : start + batch_size]
            yb = None if y is None else y[start : start + batch_size]
        else:
            idx = perm[start : start + batch_size]  # (B,)
            xb = x.index_select(0, idx)
            yb = None if y is None else y.index_select(0, idx.to(y.device))
        if binarize_dynamic:
            xb = _bernoulli(xb, generator, gen_device)
        yield xb, yb


def _bernoulli(xb: Tensor, generator: torch.Generator | None, gen_device: torch.device) -> Tensor:
    """A Bernoulli(xb) sample, drawn from ``generator`` even when it lives on another device."""
    if generator is None or gen_device == xb.device:
        return torch.bernoulli(xb, generator=generator)
    u = torch.rand(xb.shape, generator=generator, device=gen_device).to(xb.device)  # uniform(0, 1), same shape
    return (u < xb).to(xb.dtype)


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} is invalid; expected a positive integer.")
