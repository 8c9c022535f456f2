"""Missing-value imputation with a trained model: fill the values a mask marks missing, keep the rest.

Three methods, from the most to the least exact:

- ``metropolis``: Metropolis-within-Gibbs (Mattei & Frellsen 2018, "Leveraging the exact likelihood of
  deep latent variable models", section 4). With the observed values fixed, alternate z ~ q(z | x)
  as an independence proposal, accepted with probability
  min(1, [p(x, z') / q(z' | x)] / [p(x, z) / q(z | x)]), and x_missing ~ p(x_missing | z). The chain's
  stationary distribution is the model's exact conditional p(x_missing | x_observed), however rough q is.
  Needs a latent-variable model with a Gaussian ``encode`` and a closed-form ``log_joint`` (the VAE,
  the conditional VAE, the one-layer IWAE).
- ``pseudo_gibbs``: the same chain with every proposal accepted (Rezende, Mohamed & Wierstra 2014,
  section 5.2, "missing data imputation"). Simpler, and exact only where q(z|x) is the true
  posterior; needs a Gaussian ``encode``.
- ``iterate``: x_missing <- reconstruct(x)_missing repeated, for any model that reconstructs (the
  deterministic autoencoders, the VQ-VAE). For a linear autoencoder its fixed point is the
  least-squares completion within the learned subspace.

The single imputation returned (``ImputationResult.mean``) is E[x_missing | x_observed] estimated
along the chain after burn-in as the average of the decoder's means at each step's z (its
conditional mean, which has less variance than averaging the sampled values); ``sample`` is the
chain's last state, one draw from the conditional.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .. import losses
from ..errors import AekitError, ConfigError, DataError
from ..models.base import GaussianLatent

METHODS = ("metropolis", "pseudo_gibbs", "iterate")
PATTERNS = ("random", "bottom", "right", "square")


@dataclass
class ImputationResult:
    """``mean``: the data with each missing value replaced by its estimated conditional mean;
    ``sample``: one draw of the missing values (the chain's last state; ``mean`` again for ``iterate``);
    ``acceptance``: the share of accepted proposals (``metropolis``; 1.0 for ``pseudo_gibbs``; None)."""

    mean: torch.Tensor
    sample: torch.Tensor
    acceptance: float | None


def missing_mask(shape: tuple[int, ...], pattern: str = "random", fraction: float = 0.5,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """A boolean mask of ``shape`` (N, *item) that is True where a value is observed.

    ``random``: each value missing independently with probability ``fraction``; ``bottom`` / ``right``:
    that share of each image's rows from the bottom / columns from the right (of the features, for
    flat rows: the last ones); ``square``: a centred square covering about that share of each image.
    """
    if pattern not in PATTERNS:
        raise ConfigError(f"pattern={pattern!r} is not one of {', '.join(PATTERNS)}.")
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"fraction={fraction!r} must lie strictly between 0 and 1 (the share of values missing).")
    n, item = shape[0], tuple(shape[1:])
    if pattern == "random":
        return torch.rand(shape, generator=generator) >= fraction
    if pattern == "square" and len(item) < 2:
        raise ConfigError(f"pattern='square' needs images; items of shape {item} are flat (use random, bottom or right).")
    observed = torch.ones(item, dtype=torch.bool)
    if len(item) < 2:                                    # flat rows: the last features
        observed[item[0] - max(1, round(fraction * item[0])):] = False
    else:
        h, w = item[-2], item[-1]
        if pattern == "bottom":
            observed[..., h - max(1, round(fraction * h)):, :] = False
        elif pattern == "right":
            observed[..., w - max(1, round(fraction * w)):] = False
        else:
            side_h, side_w = max(1, round(math.sqrt(fraction) * h)), max(1, round(math.sqrt(fraction) * w))
            top, left = (h - side_h) // 2, (w - side_w) // 2
            observed[..., top:top + side_h, left:left + side_w] = False
    return observed.expand(n, *item).clone()


@torch.no_grad()
def choose_method(model: Any, x: torch.Tensor, y: torch.Tensor | None) -> str:
    """The most exact method the model supports, asked of the model on one row: metropolis where it
    gives log p(x, z) with a Gaussian q(z|x), pseudo_gibbs where it gives only the Gaussian q(z|x),
    else iterated reconstruction."""
    if not getattr(model, "is_generative", False):
        return "iterate"
    y1 = None if y is None else y[:1]
    try:
        latent = model.encode(x[:1], y1)
    except AekitError:
        return "iterate"
    if not isinstance(latent, GaussianLatent):
        return "iterate"
    try:
        model.log_joint(x[:1], latent.mean, y1)
    except (AttributeError, AekitError):
        return "pseudo_gibbs"
    return "metropolis"


@torch.no_grad()
def impute(model: torch.nn.Module, x: torch.Tensor, observed: torch.Tensor, y: torch.Tensor | None = None, *,
           method: str = "metropolis", steps: int = 200, burn_in: int | None = None,
           warm_start: int | None = None, fill: torch.Tensor | float = 0.0,
           batch_size: int = 1000, generator: torch.Generator | None = None) -> ImputationResult:
    """Impute the values of ``x`` (N, *item, as the model takes them) where ``observed`` is False.

    ``method="auto"`` takes the most exact one the model supports (``choose_method``).
    ``steps`` iterations per row (chains run in parallel over the rows, ``batch_size`` rows at a time);
    the conditional mean averages the steps after ``burn_in`` (default: the first half). ``metropolis``
    takes its first ``warm_start`` steps (default: half the burn-in) as pseudo-Gibbs steps: from a poor
    start (the fill) an independence proposal is rarely accepted, and the chain's stationary
    distribution does not depend on where it starts. ``fill`` starts
    the missing values (a scalar, or one item: e.g. the training mean). ``y``: labels or condition
    vectors for a conditional model. Observed values are returned unchanged.
    """
    if method == "auto":
        method = choose_method(model, x, y)
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is not one of {', '.join(METHODS)}.")
    if steps < 1:
        raise ConfigError(f"steps={steps!r} must be at least 1.")
    burn_in = steps // 2 if burn_in is None else burn_in
    if not 0 <= burn_in < steps:
        raise ConfigError(f"burn_in={burn_in!r} must lie in 0..steps - 1 ({steps - 1}).")
    warm_start = burn_in // 2 if warm_start is None else warm_start
    if not 0 <= warm_start <= burn_in:
        raise ConfigError(f"warm_start={warm_start!r} must lie in 0..burn_in ({burn_in}): the steps averaged are Metropolis steps.")
    if observed.shape != x.shape or observed.dtype != torch.bool:
        raise DataError(f"The mask must be a boolean tensor of the data's shape {tuple(x.shape)}; got "
                        f"{observed.dtype} of shape {tuple(observed.shape)}.")
    _check_model(model, method)
    was_training = model.training
    model.eval()
    try:
        fill = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
        means, samples, accepted = [], [], 0.0
        for start in range(0, x.shape[0], batch_size):
            rows = slice(start, start + batch_size)
            yb = None if y is None else y[rows]
            run = _iterate if method == "iterate" else _chain
            m, s, a = run(model, x[rows], observed[rows], yb, method, steps, burn_in, warm_start, fill, generator)
            means.append(m)
            samples.append(s)
            accepted += a * (m.shape[0] / x.shape[0])
    finally:
        model.train(was_training)
    return ImputationResult(torch.cat(means), torch.cat(samples), None if method == "iterate" else accepted)


def _check_model(model: torch.nn.Module, method: str) -> None:
    if method == "iterate":
        if not hasattr(model, "reconstruct"):
            raise ConfigError(f"{type(model).__name__} cannot reconstruct, so it cannot impute by iteration.")
        return
    if not getattr(model, "is_generative", False):
        raise ConfigError(f"method={method!r} samples the latent variables of a generative model; "
                          f"{type(model).__name__} is deterministic: use method='iterate'.")
    if method == "metropolis" and not hasattr(model, "log_joint"):
        raise ConfigError(f"method='metropolis' needs log p(x, z) in closed form, which {type(model).__name__} "
                          "does not give; use method='pseudo_gibbs' or 'iterate'.")


def _iterate(model, x, observed, y, method, steps, burn_in, warm_start, fill, generator):
    xh = torch.where(observed, x, fill)
    for _ in range(steps):
        xh = torch.where(observed, x, model.reconstruct(xh, y))
    return xh, xh, 0.0


def _chain(model, x, observed, y, method, steps, burn_in, warm_start, fill, generator):
    """Metropolis-within-Gibbs (or, accepting every proposal, pseudo-Gibbs) over the rows of ``x``."""
    xh = torch.where(observed, x, fill)
    z = None
    mean_sum = torch.zeros_like(x)
    n_accept = torch.zeros((), device=x.device)
    for t in range(steps):
        latent = model.encode(xh, y)
        if not isinstance(latent, GaussianLatent):
            raise ConfigError(f"{type(model).__name__}'s encode does not give a Gaussian q(z|x) to propose from; "
                              "use method='iterate'.")
        proposal = losses.reparameterize(latent.mean, latent.logvar, 1, generator)[0]
        if method == "metropolis" and t > warm_start:
            # importance weights p(x, z) / q(z | x) of the proposal and of the current z, at the current x
            log_w_new = model.log_joint(xh, proposal, y) - losses.log_normal(proposal, latent.mean, latent.logvar)
            log_w = model.log_joint(xh, z, y) - losses.log_normal(z, latent.mean, latent.logvar)
            u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
            accept = torch.log(u) < log_w_new - log_w
            n_accept += accept.sum()
            z = torch.where(accept[:, None], proposal, z)
        else:   # pseudo-Gibbs, and the Metropolis chain's warm start
            z = proposal
        dec = model.decode(z, y)
        xh = torch.where(observed, x, dec.sample(generator))
        if t >= burn_in:
            mean_sum += dec.mean()
    rate = 1.0 if method == "pseudo_gibbs" else float(n_accept) / max(1, (steps - 1 - warm_start) * x.shape[0])
    return torch.where(observed, x, mean_sum / (steps - burn_in)), xh, rate
