"""What ``aekit evaluate`` reports for any model, chosen by capability flags, never by name.

Every model: the mean of its loss and loss terms on the split, and the reconstruction MSE in the
data's own scale. Models with a likelihood: the ELBO (nats and bits/dim) and, when ``k > 0``, the
importance-sampled log-likelihood of Burda et al. 2015. Models that define
``evaluation_terms(x)`` add their own (sparsity level, Jacobian norm, denoising PSNR ...).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from .. import plots
from ..data import batches


@torch.no_grad()
def reconstruct_all(model: Any, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000) -> torch.Tensor:
    """Decoder means at the deterministic codes, batched; (N, *input_shape)."""
    out = [model.reconstruct(xb, yb) for xb, yb in batches(x, y, batch_size=batch_size, shuffle=False)]
    return torch.cat(out)


@torch.no_grad()
def embed_all(model: Any, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000) -> torch.Tensor:
    out = [model.embed(xb, yb) for xb, yb in batches(x, y, batch_size=batch_size, shuffle=False)]
    return torch.cat(out)


def labels_for(model: Any, y: torch.Tensor | None) -> torch.Tensor | None:
    return y if (model.is_conditional or model.uses_labels) else None


@torch.no_grad()
def evaluate_model(model: Any, x: torch.Tensor, y: torch.Tensor | None = None, *, k: int = 0,
                   batch_size: int = 1000, raw_x: torch.Tensor | None = None) -> dict[str, float]:
    """Metrics of ``model`` on preprocessed inputs ``x`` (N, *input_shape).

    ``raw_x`` (the same items before preprocessing) lets the MSE be reported in the data's scale.
    """
    from ..train import evaluate_loss

    model.eval()
    yl = labels_for(model, y)
    result: dict[str, float] = {"n": float(x.shape[0])}
    result.update(evaluate_loss(model, x, y, batch_size=batch_size))
    recon = reconstruct_all(model, x, yl, batch_size)
    pre = getattr(model, "preprocessing", None)
    if raw_x is not None and pre is not None:
        result["mse"] = float((pre.invert(recon) - raw_x.reshape(pre.invert(recon).shape)).pow(2).mean())
    else:
        result["mse"] = float((recon - x).pow(2).mean())
    dims = math.prod(x.shape[1:])
    if model.has_likelihood and hasattr(model, "elbo"):
        elbo = torch.cat([model.elbo(xb, yb) for xb, yb in batches(x, yl, batch_size=batch_size, shuffle=False)])
        result["elbo"] = float(elbo.mean())
        result["elbo_bits_per_dim"] = float(-elbo.mean() / (dims * math.log(2)))
        if k > 0:
            from .likelihood import log_likelihood

            ll = log_likelihood(model, x, k=k, y=yl)
            result["log_likelihood"] = float(ll.mean())
            result["nll"] = -result["log_likelihood"]
            result["nll_bits_per_dim"] = float(-ll.mean() / (dims * math.log(2)))
            result["k"] = float(k)
    if hasattr(model, "evaluation_terms"):
        result.update({key: float(v) for key, v in model.evaluation_terms(x).items()})
    return result


@torch.no_grad()
def write_figures(model: Any, x: torch.Tensor, y: torch.Tensor | None, out_dir: str | Path,
                  history: list[dict[str, float]] | None = None, class_names: Any = None,
                  n_images: int = 32, seed: int = 0, max_points: int = 5000) -> list[Path]:
    """Reconstructions, samples (generative models), the latent scatter and the loss curves."""
    out_dir = Path(out_dir)
    model.eval()
    pre = getattr(model, "preprocessing", None)
    raw = (lambda t: pre.invert(t)) if pre is not None else (lambda t: t)
    shape = pre.input_shape if pre is not None else tuple(x.shape[1:])
    written: list[Path] = []
    yl = labels_for(model, y)
    n = min(n_images, x.shape[0])
    xs, ys = x[:n], (None if yl is None else yl[:n])
    p = plots.reconstructions(raw(xs), raw(model.reconstruct(xs, ys)), out_dir / "reconstructions.png", shape)
    if p is not None:
        written.append(p)
    if model.is_generative:
        g = torch.Generator().manual_seed(seed)
        cond = None
        if model.is_conditional and model.config.num_classes:
            cond = torch.arange(64) % model.config.num_classes
        imgs = plots.as_images(raw(model.sample(64, cond, generator=g)), shape)
        if imgs is not None:
            written.append(plots.save_grid(imgs, out_dir / "samples.png", ncols=8, title="samples from the prior"))
    m = min(max_points, x.shape[0])
    z = embed_all(model, x[:m], None if yl is None else yl[:m])
    written.append(plots.latent_scatter(z, None if y is None else y[:m], out_dir / "latent.png",
                                        f"{type(model).__name__} latent space (test split)", class_names))
    if history:
        written.append(plots.loss_curves(history, out_dir / "curves.png"))
    return written
