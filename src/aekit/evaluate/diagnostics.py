"""Latent-space diagnostics: why a plain autoencoder is a poor generator and a VAE a better one.

Sampling a plain AE means drawing codes from some distribution and decoding them. Three things go
wrong (they are the usual argument for the VAE's prior, e.g. Kingma & Welling 2013, section 2,
and every VAE tutorial since): the cloud of codes is (1) not centred or symmetric around the
origin, (2) classes occupy areas of very different size, and (3) there are gaps between them, so a
draw lands where no input encodes and decodes to nothing recognisable. Each becomes a number:

- ``centre_offset``: ||mean of the codes|| in units of their spread sqrt(tr Cov / D) (0 is centred);
  ``asymmetry``: the mean over dimensions of |skewness| (0 for a symmetric cloud).
- ``class_area_ratio``: largest over smallest class "area", the area of class c being
  det(Cov_c)^(1/D) (the geometric mean of its variances: in 2-D, its area up to a constant).
- ``prior_hole_fraction``: the share of draws from N(0, I) whose nearest encoded input lies farther
  than the ``hole_quantile`` (0.99) quantile of the inputs' own nearest-neighbour distances:
  prior mass where no data encodes. ``fitted_hole_fraction``: the same for draws from the Gaussian
  with the codes' own mean and covariance, the best a user of a plain AE could do.

"Encoded inputs" are one draw z ~ q(z|x) per input for a model with a Gaussian posterior (the
aggregate posterior the decoder is trained on) and the code itself for a deterministic one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from .. import losses
from ..errors import ConfigError
from ..io import atomic_write


@torch.no_grad()
def encoded_draws(model: Any, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """One z ~ q(z|x) per input (a Gaussian posterior) or the code itself; (N, D)."""
    model.eval()
    out = []
    for start in range(0, x.shape[0], batch_size):
        yb = None if y is None else y[start:start + batch_size]
        lat = model.encode(x[start:start + batch_size], yb)
        if hasattr(lat, "logvar"):
            out.append(losses.reparameterize(lat.mean, lat.logvar, 1, generator)[0].float())
        else:
            out.append(lat.mean.float())
    return torch.cat(out)


def _nearest_distance(a: torch.Tensor, b: torch.Tensor, exclude_self: bool = False, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row of a (M, D) to its nearest row of b (N, D), in chunks of rows; (M,)."""
    out = []
    for start in range(0, a.shape[0], chunk):
        d = torch.cdist(a[start:start + chunk], b)                          # (m, N)
        if exclude_self:
            idx = torch.arange(start, start + d.shape[0])
            d[torch.arange(d.shape[0]), idx] = float("inf")
        out.append(d.min(dim=1).values)
    return torch.cat(out)


def latent_diagnostics(
    z: torch.Tensor, labels: torch.Tensor | None = None, *, n_draws: int = 2000, hole_quantile: float = 0.99,
    max_reference: int = 5000, seed: int = 0,
) -> dict[str, float]:
    """The numbers above for codes z (N, D) with optional labels (N,); see the module docstring."""
    z = z.detach().double().cpu()
    n, d = z.shape
    if n < d + 2:
        raise ConfigError(f"Latent diagnostics need more codes than dimensions; got {n} codes of dimension {d}.")
    gen = torch.Generator().manual_seed(seed)
    mean = z.mean(0)
    cov = torch.atleast_2d(torch.cov(z.T))
    spread = float(torch.sqrt(torch.trace(cov) / d))
    centred = z - mean
    skew = (centred.pow(3).mean(0) / centred.pow(2).mean(0).clamp_min(1e-300).pow(1.5)).abs()
    result = {
        "centre_offset": float(mean.norm()) / spread,
        "asymmetry": float(skew.mean()),
        "spread": spread,
    }
    if labels is not None:
        labels = labels.cpu()
        areas = []
        for c in torch.unique(labels):
            zc = z[labels == c]
            if zc.shape[0] > d:
                cov_c = torch.atleast_2d(torch.cov(zc.T)) + 1e-12 * spread**2 * torch.eye(d, dtype=z.dtype)
                areas.append(torch.linalg.slogdet(cov_c).logabsdet / d)
        if len(areas) >= 2:
            a = torch.stack(areas)
            result["class_area_ratio"] = float(torch.exp(a.max() - a.min()))
    ref = z if n <= max_reference else z[torch.randperm(n, generator=gen)[:max_reference]]
    radius = torch.quantile(_nearest_distance(ref, ref, exclude_self=True), hole_quantile)
    prior = torch.randn(n_draws, d, generator=gen, dtype=z.dtype)
    result["prior_hole_fraction"] = float((_nearest_distance(prior, ref) > radius).double().mean())
    chol = torch.linalg.cholesky(cov + 1e-12 * spread**2 * torch.eye(d, dtype=z.dtype))
    fitted = mean + torch.randn(n_draws, d, generator=gen, dtype=z.dtype) @ chol.T
    result["fitted_hole_fraction"] = float((_nearest_distance(fitted, ref) > radius).double().mean())
    return result


def save_scatter_panels(panels: dict[str, tuple[torch.Tensor, torch.Tensor | None]], path: str | Path,
                        class_names: Sequence[str] | None = None, max_points: int = 5000) -> Path:
    """Side-by-side 2-D scatters of codes coloured by label, with the N(0, I) 1- and 2-sigma circles;
    codes of more than 2 dimensions are projected on their first two principal components."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5), squeeze=False)
    for ax, (name, (z, lab)) in zip(axes[0], panels.items()):
        a = z[:max_points].detach().double().cpu().numpy()
        if a.shape[1] > 2:
            a = a - a.mean(0)
            a = a @ np.linalg.svd(a, full_matrices=False)[2][:2].T
        elif a.shape[1] == 1:
            a = np.concatenate([a, np.zeros_like(a)], 1)
        colours = None if lab is None else lab[:max_points].cpu().numpy()
        sc = ax.scatter(a[:, 0], a[:, 1], c=colours, cmap="tab10", s=3, alpha=0.6)
        if colours is not None:
            handles, names = sc.legend_elements()
            if class_names is not None:
                names = [class_names[int(v)] for v in np.unique(colours)]
            ax.legend(handles, names, fontsize=7, markerscale=0.8, loc="best")
        t = np.linspace(0, 2 * np.pi, 200)
        for r in (1, 2):
            ax.plot(r * np.cos(t), r * np.sin(t), "k--", lw=0.8, alpha=0.6)
        ax.plot([0], [0], "k+", ms=10)
        ax.set_title(name)
        ax.set_aspect("equal", adjustable="datalim")
    fig.suptitle("codes of the test split; dashed: 1 and 2 standard deviations of N(0, I)")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return path
