"""Density evaluation: the test ELBO with its terms and the importance-sampled log-likelihood.

Burda, Grosse & Salakhutdinov 2015 (eq. 8 and section 5.1): with z_i ~ q(z|x),

    log p(x) ~= log (1/k) sum_{i=1..k} p(x, z_i) / q(z_i | x),

whose argument of the log is an unbiased estimate of p(x) for any q that covers the posterior; the
log of it is a lower bound that tightens as k grows (k = 5000 in their Table 1). Any model works
that defines ``log_importance_weights(x, k, y=None, generator=None) -> (k, N)`` (VAE, CVAE, IWAE).

Vectorized over samples and data: each pass evaluates ``chunk_size`` (sample, datapoint) pairs
at once — k_chunk = min(k, chunk_size) samples for max(1, chunk_size // k_chunk) data points — and
the chunks over k are merged with a running logsumexp, so memory is bounded by ``chunk_size``
whatever k and N are.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from ..data.chunked import count_nonfinite
from ..errors import ConfigError
from ..nn import DISCRETE_LIKELIHOODS, model_device

# (sample, datapoint) pairs per pass: for MNIST about 3 MB of decoder output per pass, which stays in
# cache. With a trained MNIST model on one core, 512 to 1024 pairs ran at 6.7 us per pair, 4096 at
# 10 and 16384 at 14 (benchmarks/loglik_speed.py sweeps it).
DEFAULT_CHUNK = 1 << 10


def _check(model: Any, name: str) -> None:
    if name == "log_importance_weights" and getattr(model, "has_likelihood", False) and not hasattr(model, name):
        raise ConfigError(f"{type(model).__name__}'s q(z|x) is a point mass, so importance samples cannot tighten "
                          "its bound: evaluate it with k=0 and read the ELBO.")
    if not getattr(model, "has_likelihood", False) or not hasattr(model, name):
        raise ConfigError(f"{type(model).__name__} has no likelihood to evaluate (it defines no {name}).")


def _wide(t: torch.Tensor) -> torch.Tensor:
    # bf16/fp16 results are summed in float32; float64 ones stay float64.
    return t if t.dtype == torch.float64 else t.float()


def _on_model(model: Any, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    if hasattr(model, "check_inputs"):
        model.check_inputs(x, y)
    dev = model_device(model)
    return x.to(dev), (None if y is None else y.to(dev))


def _device_generator(x: torch.Tensor, generator: torch.Generator | None, seed: int) -> torch.Generator:
    return generator if generator is not None else torch.Generator(device=x.device).manual_seed(seed)


@torch.no_grad()
def log_likelihood(
    model: Any,
    x: torch.Tensor,
    k: int = 5000,
    chunk_size: int = DEFAULT_CHUNK,
    y: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Importance-sampled log p(x) in nats for every row of ``x`` (N, *input_shape) -> (N,).

    ``y``: labels or condition vectors of a conditional model. The samples come from ``generator``
    (default: a fresh one seeded with ``seed`` on x's device, so repeated calls agree).
    """
    _check(model, "log_importance_weights")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k={k!r} must be a positive number of importance samples.")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"chunk_size={chunk_size!r} must be a positive number of (sample, datapoint) pairs.")
    x, y = _on_model(model, x, y)
    was_training = model.training
    model.eval()
    gen = _device_generator(x, generator, seed)
    n = x.shape[0]
    k_chunk = min(k, chunk_size)
    rows = max(1, chunk_size // k_chunk)
    parts = []
    try:
        for start in range(0, n, rows):
            xb = x[start:start + rows]
            yb = None if y is None else y[start:start + rows]
            acc: torch.Tensor | None = None  # running log sum_i w_i, (B,)
            for k0 in range(0, k, k_chunk):
                lw = model.log_importance_weights(xb, min(k_chunk, k - k0), yb, gen)  # (kk, B)
                s = torch.logsumexp(_wide(lw), dim=0)
                acc = s if acc is None else torch.logaddexp(acc, s)
            parts.append(acc - math.log(k))
    finally:
        model.train(was_training)
    return torch.cat(parts)


@torch.no_grad()
def elbo_terms(
    model: Any, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000,
    generator: torch.Generator | None = None, seed: int = 0,
) -> dict[str, torch.Tensor]:
    """The ELBO and its terms (E_q log p(x|z), KL) for every row of x, batched; each (N,) in nats.
    A model that defines only ``elbo`` (M2) gives the ELBO alone."""
    if not hasattr(model, "elbo_terms"):
        _check(model, "elbo")
    else:
        _check(model, "elbo_terms")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be a positive integer.")
    x, y = _on_model(model, x, y)
    was_training = model.training
    model.eval()
    gen = _device_generator(x, generator, seed)
    parts: dict[str, list[torch.Tensor]] = {}
    try:
        for start in range(0, x.shape[0], batch_size):
            yb = None if y is None else y[start:start + batch_size]
            xb = x[start:start + batch_size]
            terms = model.elbo_terms(xb, yb, gen) if hasattr(model, "elbo_terms") else {"elbo": model.elbo(xb, yb, gen)}
            for key, v in terms.items():
                parts.setdefault(key, []).append(_wide(v))
    finally:
        model.train(was_training)
    return {key: torch.cat(v) for key, v in parts.items()}


def bits_per_dim(log_px: torch.Tensor | float, num_dims: int, levels: int | None = None) -> torch.Tensor | float:
    """-log2 p(x) / D. With ``levels`` (e.g. 256), a density on [0, 1] is read as the probability of
    its quantization bin of width 1/levels: -log p_bin = -log p_density + D log(levels)."""
    shift = math.log(levels) if levels else 0.0
    return -(log_px / num_dims - shift) / math.log(2.0)


def is_discrete(model: Any) -> bool:
    """Whether the model's log p(x) is a probability (Bernoulli, discretized logistic) or a density."""
    return getattr(model.config, "likelihood", "bernoulli") in DISCRETE_LIKELIHOODS


def density_report(
    model: Any, x: torch.Tensor, y: torch.Tensor | None = None, *, k: int = 5000,
    chunk_size: int = DEFAULT_CHUNK, batch_size: int = 1000, seed: int = 0,
) -> dict[str, float]:
    """Means over x of the ELBO, its terms and (k > 0) the k-sample log-likelihood, in nats and bits/dim.

    For a density decoder (Gaussian, continuous Bernoulli) the bits/dim are also given for 8-bit data
    (``*_bits_per_dim_8bit``: each value read as one of 256 levels). With missing values (NaN, for a
    model trained with missing_values) a "dim" is an observed value.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ConfigError(f"k={k!r} must be 0 (no log-likelihood) or a positive number of importance samples.")
    dims = math.prod(x.shape[1:])
    missing = count_nonfinite(x) - count_nonfinite(x, allow_nan=True)   # NaN: values missing in the data
    if missing:   # bits per observed value: the densities are of the observed values alone
        dims -= missing / x.shape[0]
    t0 = time.perf_counter()
    terms = elbo_terms(model, x, y, batch_size=batch_size, seed=seed)
    report: dict[str, float] = {key: float(v.mean()) for key, v in terms.items()}
    report["elbo_bits_per_dim"] = float(bits_per_dim(report["elbo"], dims))
    report["elbo_seconds"] = time.perf_counter() - t0
    if k > 0:
        t0 = time.perf_counter()
        ll = log_likelihood(model, x, k=k, chunk_size=chunk_size, y=y, seed=seed)
        report["log_likelihood"] = float(ll.mean())
        report["nll"] = -report["log_likelihood"]
        report["nll_bits_per_dim"] = float(bits_per_dim(report["log_likelihood"], dims))
        report["k"] = float(k)
        report["log_likelihood_seconds"] = time.perf_counter() - t0
    if not is_discrete(model):
        for key in ("elbo", "log_likelihood"):
            if key in report:
                report[f"{key}_bits_per_dim_8bit"] = float(bits_per_dim(report[key], dims, 256))
    return report
