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
- ``prior_hole_fraction``: the share of draws from N(0, I) that fall where no data encodes. Pool
  M codes with M draws; a draw is in a hole when none of its ``k`` (10) nearest neighbours in the
  pool is a code, i.e. where the codes' density is far below the sampling density. (Were the codes
  distributed as the draws, that would happen by chance with probability 2^-k, about 0.001.) The
  test adapts to the local scale, so dense cores and sparse arms of the cloud are judged alike.
  ``fitted_hole_fraction``: the same for draws from the Gaussian with the codes' own mean and
  covariance, the best a user of a plain AE could do.

"Encoded inputs" are one draw z ~ q(z|x) per input for a model with a Gaussian posterior (the
aggregate posterior the decoder is trained on) and the code itself for a deterministic one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from .. import losses
from ..errors import ConfigError, DataError
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


def _hole_fraction(codes: torch.Tensor, draws: torch.Tensor, k: int, chunk: int = 1024) -> float:
    """Share of draws (M, D) none of whose k nearest neighbours among codes (M, D) and the other draws
    is a code."""
    pool = torch.cat([codes, draws])                                        # (2M, D)
    m = codes.shape[0]
    empty = 0
    for start in range(0, draws.shape[0], chunk):
        d = torch.cdist(draws[start:start + chunk], pool)                   # (c, 2M)
        rows = torch.arange(d.shape[0])
        d[rows, m + start + rows] = float("inf")                            # not its own neighbour
        nearest = d.topk(k, dim=1, largest=False).indices                   # (c, k)
        empty += int(((nearest < m).sum(1) == 0).sum())
    return empty / draws.shape[0]


def latent_diagnostics(
    z: torch.Tensor, labels: torch.Tensor | None = None, *, k: int = 10, max_points: int = 5000, seed: int = 0,
) -> dict[str, float]:
    """The numbers above for codes z (N, D) with optional labels (N,); see the module docstring."""
    if not isinstance(z, torch.Tensor) or z.dim() != 2:
        raise DataError(f"Latent diagnostics need codes z as a tensor (N, D); got {getattr(z, 'shape', type(z).__name__)}.")
    z = z.detach().double().cpu()
    n, d = z.shape
    if not bool(torch.isfinite(z).all()):
        raise DataError("The codes z hold NaN or infinite values; expected finite codes.")
    if labels is not None and (not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (n,)):
        raise DataError(f"labels must be a tensor of {n} labels, one per code; got {getattr(labels, 'shape', type(labels).__name__)}.")
    pool = 2 * min(n, max_points) - 1   # codes and prior draws, less the point itself
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= pool:
        raise ConfigError(f"k={k!r} must be a whole number of neighbours from 1 to {pool}.")
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
    ref = z if n <= max_points else z[torch.randperm(n, generator=gen)[:max_points]]   # (M, D)
    m = ref.shape[0]
    prior = torch.randn(m, d, generator=gen, dtype=z.dtype)
    result["prior_hole_fraction"] = _hole_fraction(ref, prior, k)
    chol = torch.linalg.cholesky(cov + 1e-12 * spread**2 * torch.eye(d, dtype=z.dtype))
    fitted = mean + torch.randn(m, d, generator=gen, dtype=z.dtype) @ chol.T
    result["fitted_hole_fraction"] = _hole_fraction(ref, fitted, k)
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
