"""Latent statistics: active units and the KL per latent dimension.

Active units (Burda, Grosse & Salakhutdinov 2015, section 5.2): a unit u is active when
A_u = Cov_x( E_{q(u|x)}[u] ) > 0.01, i.e. when its posterior mean moves with the input; an
inactive unit's posterior collapses onto the prior. The KL per dimension,
E_x KL(q(z_j|x) || p(z_j)), shows the same from the objective's side (Kingma & Welling, app. B).
Models with several stochastic layers (a two-layer IWAE, through ``layer_posterior_means``) are
measured layer by layer, as Burda et al. report them: E_q[h2|x] = E_{q(h1|x)}[E[h2|h1]] by Monte
Carlo over h1. Their KL per dimension is that of the top layer at h1 = E[h1|x] (``encode``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .. import losses
from ..errors import ConfigError
from ..nn import model_device


@dataclass
class ActiveUnits:
    count: int
    variances: torch.Tensor   # (D,) Var_x E_q[z_j | x]
    threshold: float

    @property
    def active(self) -> torch.Tensor:
        """Boolean mask of the active units, (D,)."""
        return self.variances > self.threshold


@torch.no_grad()
def posterior_parameters(
    model: Any, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Posterior means (N, D) and log-variances (N, D) (None for a deterministic code), batched."""
    dev = model_device(model)
    was_training = model.training
    model.eval()
    means, logvars = [], []
    try:
        for start in range(0, x.shape[0], batch_size):
            yb = None if y is None else y[start:start + batch_size].to(dev)
            lat = model.encode(x[start:start + batch_size].to(dev), yb)
            means.append(lat.mean.float().cpu())
            if hasattr(lat, "logvar"):
                logvars.append(lat.logvar.float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(means), (torch.cat(logvars) if logvars else None)


def active_units(
    model: Any, x: torch.Tensor, y: torch.Tensor | None = None, threshold: float = 0.01, batch_size: int = 1000
) -> ActiveUnits:
    """Units whose posterior mean varies over the data by more than ``threshold`` (Burda et al.: 0.01)."""
    means, _ = posterior_parameters(model, x, y, batch_size)
    if means.shape[0] < 2:
        raise ConfigError(f"Active units need at least 2 inputs to measure a variance; got {means.shape[0]}.")
    variances = means.var(dim=0, unbiased=True)
    return ActiveUnits(int((variances > threshold).sum()), variances, threshold)


@torch.no_grad()
def active_units_per_layer(
    model: Any, x: torch.Tensor, threshold: float = 0.01, batch_size: int = 1000, samples: int = 100, seed: int = 0
) -> list[ActiveUnits]:
    """Active units of every stochastic layer, bottom first, for a model that defines
    ``layer_posterior_means`` (E[h2|x] from ``samples`` draws of h1 per input, seeded); a model
    with one code gets ``[active_units(model, x)]``."""
    if not hasattr(model, "layer_posterior_means"):
        return [active_units(model, x, threshold=threshold, batch_size=batch_size)]
    if x.shape[0] < 2:
        raise ConfigError(f"Active units need at least 2 inputs to measure a variance; got {x.shape[0]}.")
    dev = model_device(model)
    gen = torch.Generator(device=dev).manual_seed(seed)
    was_training = model.training
    model.eval()
    layers: list[list[torch.Tensor]] = []
    try:
        for start in range(0, x.shape[0], batch_size):
            means = model.layer_posterior_means(x[start:start + batch_size].to(dev), samples, gen)
            layers = layers or [[] for _ in means]
            for store, m in zip(layers, means):
                store.append(m.float().cpu())
    finally:
        model.train(was_training)
    out = []
    for store in layers:
        variances = torch.cat(store).var(dim=0, unbiased=True)
        out.append(ActiveUnits(int((variances > threshold).sum()), variances, threshold))
    return out


def latent_statistics(
    model: Any, x: torch.Tensor, y: torch.Tensor | None = None, threshold: float = 0.01, batch_size: int = 1000
) -> dict[str, Any]:
    """The number of active units (``active_units``, as the function of that name counts them) and the
    KL per dimension (``kl_per_dim``, a list, as ``kl_per_dimension``) from one pass of the encoder;
    empty for a deterministic code or fewer than 2 inputs. With several stochastic layers
    ``active_units`` is their sum and ``active_units_per_layer`` lists them, bottom first."""
    means, logvars = posterior_parameters(model, x, y, batch_size)
    if logvars is None or means.shape[0] < 2:
        return {}
    out: dict[str, Any] = {"active_units": float(int((means.var(dim=0, unbiased=True) > threshold).sum()))}
    if hasattr(model, "layer_posterior_means"):
        per_layer = [a.count for a in active_units_per_layer(model, x, threshold, batch_size)]
        if len(per_layer) > 1:
            out.update(active_units=float(sum(per_layer)), active_units_per_layer=per_layer)
    return {**out, "kl_per_dim": losses.gaussian_kl_per_dim(means, logvars).mean(0).tolist()}


def kl_per_dimension(model: Any, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000) -> torch.Tensor:
    """E_x KL(q(z_j|x) || N(0, 1)) for each latent dimension j, in nats, (D,)."""
    means, logvars = posterior_parameters(model, x, y, batch_size)
    if logvars is None:
        raise ConfigError(f"{type(model).__name__} has a deterministic code; the KL per dimension needs a Gaussian q(z|x).")
    return losses.gaussian_kl_per_dim(means, logvars).mean(0)
