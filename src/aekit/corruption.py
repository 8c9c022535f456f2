"""Corruption processes q(x~ | x) of denoising autoencoders (Vincent et al. 2008; 2010, section 4.2).

- masking noise: a fraction nu of the elements of each example, chosen at random, is set to 0;
- additive isotropic Gaussian noise: x~ = x + sigma * eps, eps ~ N(0, I);
- salt-and-pepper noise: a fraction nu of the elements, chosen at random, is set to its minimum
  (0) or maximum (1) value with a fair coin flip.

"A fraction nu chosen at random" is taken literally: exactly round(nu * D) elements of every
example are hit (the k smallest of D uniform draws), not a Bernoulli(nu) number of them. Every
function takes (N, *shape) and returns the same shape; ``generator`` makes a draw reproducible.
The same functions corrupt the training inputs of a DAE and the test images of ``aekit denoise``.
"""

from __future__ import annotations

import math

import torch

from .errors import ConfigError

CORRUPTIONS = ("none", "masking", "gaussian", "salt_pepper")


def _rand(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform(0, 1) draws of ``shape`` on ``like``'s device, from ``generator`` wherever it lives."""
    if generator is None or generator.device == like.device:
        return torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)
    return torch.rand(shape, generator=generator, device=generator.device).to(like.device, like.dtype)


def _randn(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None or generator.device == like.device:
        return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)
    return torch.randn(shape, generator=generator, device=generator.device).to(like.device, like.dtype)


def random_subset(x: torch.Tensor, fraction: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A boolean mask of x's shape with exactly round(fraction * D) True entries per example.

    The chosen entries are those holding the k smallest of D independent uniforms, i.e. a uniformly
    random k-subset; ``kthvalue`` finds the threshold in O(D) per row (ties have probability 0).
    """
    n = x.shape[0]
    d = x[0].numel() if n else 0
    k = int(round(fraction * d))
    if k <= 0 or n == 0:
        return torch.zeros_like(x, dtype=torch.bool)
    if k >= d:
        return torch.ones_like(x, dtype=torch.bool)
    u = _rand((n, d), x, generator)                      # (N, D)
    threshold = torch.kthvalue(u, k, dim=1, keepdim=True).values  # (N, 1): the k-th smallest draw
    return (u <= threshold).reshape(x.shape)


def masking_noise(x: torch.Tensor, nu: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Set a random fraction ``nu`` of each example's elements to 0 (Vincent et al. 2008)."""
    return x.masked_fill(random_subset(x, nu, generator), 0.0)


def gaussian_noise(
    x: torch.Tensor, sigma: float, generator: torch.Generator | None = None, clip: bool = False
) -> torch.Tensor:
    """x + sigma * eps with eps ~ N(0, I); ``clip`` keeps the result in [0, 1] (images)."""
    noisy = x + sigma * _randn(tuple(x.shape), x, generator)
    return noisy.clamp(0.0, 1.0) if clip else noisy


def salt_and_pepper_noise(
    x: torch.Tensor, nu: float, generator: torch.Generator | None = None, low: float = 0.0, high: float = 1.0
) -> torch.Tensor:
    """Set a random fraction ``nu`` of each example's elements to ``low`` or ``high`` (fair coin)."""
    hit = random_subset(x, nu, generator)
    coin = _rand(tuple(x.shape), x, generator) < 0.5
    values = torch.where(coin, torch.full_like(x, high), torch.full_like(x, low))
    return torch.where(hit, values, x)


def check_corruption(kind: str, level: float, name: str = "corruption") -> None:
    """Raise ConfigError unless (kind, level) describes a valid corruption."""
    if kind not in CORRUPTIONS:
        raise ConfigError(f"{name}={kind!r} is not one of {', '.join(CORRUPTIONS)}.")
    if not math.isfinite(level) or level < 0:
        raise ConfigError(f"{name}_level={level!r} must be a finite non-negative number.")
    if kind in ("masking", "salt_pepper") and level > 1:
        raise ConfigError(f"{name}_level={level!r} is a fraction of the inputs for {kind!r} noise; expected a value in [0, 1].")


def corrupt(
    x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None, clip: bool = False
) -> torch.Tensor:
    """Draw x~ ~ q(x~ | x) for one of CORRUPTIONS; ``level`` is nu (a fraction) or sigma (Gaussian)."""
    check_corruption(kind, level)
    if kind == "none" or level == 0:
        return x
    if kind == "masking":
        return masking_noise(x, level, generator)
    if kind == "gaussian":
        return gaussian_noise(x, level, generator, clip=clip)
    return salt_and_pepper_noise(x, level, generator)
