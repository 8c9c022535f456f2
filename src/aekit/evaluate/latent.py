"""Latent statistics: active units and the KL per latent dimension.

Active units (Burda, Grosse & Salakhutdinov 2015, section 5.2): a unit u is active when
A_u = Cov_x( E_{q(u|x)}[u] ) > 0.01, i.e. when its posterior mean moves with the input; an
inactive unit's posterior collapses onto the prior. The KL per dimension,
E_x KL(q(z_j|x) || p(z_j)), shows the same from the objective's side (Kingma & Welling, app. B).
For a two-stochastic-layer IWAE the top layer is measured, with E[h2|x] taken at h1 = E[h1|x].
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


def latent_statistics(
    model: Any, x: torch.Tensor, y: torch.Tensor | None = None, threshold: float = 0.01, batch_size: int = 1000
) -> dict[str, Any]:
    """The number of active units (``active_units``, as the function of that name counts them) and the
    KL per dimension (``kl_per_dim``, a list, as ``kl_per_dimension``) from one pass of the encoder;
    empty for a deterministic code or fewer than 2 inputs."""
    means, logvars = posterior_parameters(model, x, y, batch_size)
    if logvars is None or means.shape[0] < 2:
        return {}
    active = int((means.var(dim=0, unbiased=True) > threshold).sum())
    return {"active_units": float(active), "kl_per_dim": losses.gaussian_kl_per_dim(means, logvars).mean(0).tolist()}


def kl_per_dimension(model: Any, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000) -> torch.Tensor:
    """E_x KL(q(z_j|x) || N(0, 1)) for each latent dimension j, in nats, (D,)."""
    means, logvars = posterior_parameters(model, x, y, batch_size)
    if logvars is None:
        raise ConfigError(f"{type(model).__name__} has a deterministic code; the KL per dimension needs a Gaussian q(z|x).")
    return losses.gaussian_kl_per_dim(means, logvars).mean(0)
