"""What ``aekit evaluate`` reports for any model, chosen by capability flags, never by name.

Every model: the mean of its loss and loss terms on the split, and the reconstruction MSE in the
data's own scale. Models with a likelihood: the ELBO with its terms (nats and bits/dim; for a density
decoder also bits/dim of 8-bit data) and, when ``k > 0``, the importance-sampled log-likelihood of
Burda et al. 2015, both of x alone for a model that predicts the labels (M2: log p(x) = log sum_y
p(x, y)); the active units and the KL per latent dimension (``latent_statistics``). Models that define
``evaluation_terms(x)`` add their own (sparsity level, Jacobian norm, denoising PSNR ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .. import plots
from ..data import batches
from ..errors import ConfigError
from ..nn import model_device


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
                   batch_size: int = 1000, raw_x: torch.Tensor | None = None,
                   chunk_size: int | None = None) -> dict[str, Any]:
    """Metrics of ``model`` on preprocessed inputs ``x`` (N, *input_shape).

    ``raw_x`` (the same items before preprocessing) lets the MSE be reported in the data's scale;
    ``chunk_size``: (sample, datapoint) pairs per pass of the log-likelihood (memory against speed).
    Every value is a float except ``kl_per_dim``, a list with one KL in nats per latent dimension.
    """
    from .likelihood import DEFAULT_CHUNK

    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ConfigError(f"k={k!r} must be 0 (no log-likelihood) or a positive number of importance samples.")
    chunk_size = DEFAULT_CHUNK if chunk_size is None else chunk_size
    was_training = model.training
    model.eval()
    try:
        return _evaluate(model, x, y, k, batch_size, raw_x, chunk_size)
    finally:
        model.train(was_training)


def _evaluate(model: Any, x: torch.Tensor, y: torch.Tensor | None, k: int, batch_size: int,
              raw_x: torch.Tensor | None, chunk_size: int) -> dict[str, Any]:
    from ..train import evaluate_loss
    from .latent import latent_statistics
    from .likelihood import density_report

    yl = labels_for(model, y)
    result: dict[str, Any] = {"n": float(x.shape[0])}
    result.update(evaluate_loss(model, x, y, batch_size=batch_size))
    recon = reconstruct_all(model, x, yl, batch_size)
    pre = getattr(model, "preprocessing", None)
    # nanmean: over the observed values of data with missing ones (NaN, for models with missing_values)
    if raw_x is not None and pre is not None:
        result["mse"] = float((pre.invert(recon) - raw_x.reshape(pre.invert(recon).shape)).pow(2).nanmean())
    else:
        result["mse"] = float((recon - x).pow(2).nanmean())
    ly = None if model.uses_labels else yl   # the density of x alone, not of (x, y), for a model that predicts y
    if model.has_likelihood and (hasattr(model, "elbo_terms") or hasattr(model, "elbo")):
        result.update(density_report(model, x, ly, k=k, chunk_size=chunk_size, batch_size=batch_size))
        result.update(latent_statistics(model, x, yl, batch_size=batch_size))
    if hasattr(model, "evaluation_terms"):
        result.update({key: float(v) for key, v in model.evaluation_terms(x).items()})
    return result


@torch.no_grad()
def write_figures(model: Any, x: torch.Tensor, y: torch.Tensor | None, out_dir: str | Path,
                  history: list[dict[str, float]] | None = None, class_names: Any = None,
                  n_images: int = 32, seed: int = 0, max_points: int = 5000) -> list[Path]:
    """Reconstructions, the latent scatter, interpolations between the codes of pairs of inputs, the loss
    curves; for generative models samples from the prior and, with a 2-D latent, the learned manifold
    (a conditional model's for the first item's label)."""
    from .figures import save_interpolations, save_manifold

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
    drawable = plots.as_images(raw(xs[:1]), shape) is not None
    if model.is_generative:
        g = torch.Generator().manual_seed(seed)
        cond = None
        if model.is_conditional and model.config.num_classes:
            cond = torch.arange(64, device=model_device(model)) % model.config.num_classes
        imgs = plots.as_images(raw(model.sample(64, cond, generator=g)), shape)
        if imgs is not None:
            written.append(plots.save_grid(imgs, out_dir / "samples.png", ncols=8, title="samples from the prior"))
        if model.latent_dim == 2 and drawable:
            first = None if yl is None or yl.dim() != 1 or int(yl[0]) < 0 else int(yl[0])
            if not model.is_conditional or first is not None:
                written.append(save_manifold(model, out_dir / "manifold.png", y=first))
    pairs = min(8, x.shape[0] // 2)
    if pairs and drawable:
        ya, yb = (None, None) if yl is None else (yl[:pairs], yl[pairs:2 * pairs])
        written.append(save_interpolations(model, x[:pairs], x[pairs:2 * pairs], out_dir / "interpolations.png",
                                           y_a=ya, y_b=yb))
    m = min(max_points, x.shape[0])
    z = embed_all(model, x[:m], None if yl is None else yl[:m])
    written.append(plots.latent_scatter(z, None if y is None else y[:m], out_dir / "latent.png",
                                        f"{type(model).__name__} latent space (test split)", class_names))
    if history:
        written.append(plots.loss_curves(history, out_dir / "curves.png"))
    return written
