"""Pictures of a generative model's latent space.

- The learned manifold (Kingma & Welling 2013, Fig. 4): a regular grid on the unit square pushed
  through the inverse Gaussian CDF, so that equal steps carry equal prior mass, and decoded.
- Interpolation between the codes of two inputs; samples from the prior.
- Conditional models (Kingma, Rezende, Mohamed & Welling 2014, Fig. 1): "analogies" — the style z
  inferred from a test image, decoded with every label y — and class rows, the same prior draws of
  z decoded with each y (fix y and vary z along a row; fix z and vary y down a column).

Each ``*_images`` function returns decoder means in the data's raw scale (the model's recorded
preprocessing undone); each ``save_*`` writes a PNG (matplotlib, Agg backend) and returns its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .. import plots
from ..errors import ConfigError
from ..nn import model_device as _device


def _raw(model: Any, t: torch.Tensor) -> torch.Tensor:
    pre = getattr(model, "preprocessing", None)
    return pre.invert(t) if pre is not None else t


def _shape(model: Any) -> tuple[int, ...]:
    pre = getattr(model, "preprocessing", None)
    return tuple(pre.input_shape) if pre is not None else tuple(model.config.input_shape)


def _as_images(model: Any, t: torch.Tensor):
    imgs = plots.as_images(t, _shape(model))
    if imgs is None:
        raise ConfigError(f"Items of shape {_shape(model)} cannot be drawn as images.")
    return imgs


def _check_generative(model: Any) -> None:
    if not getattr(model, "is_generative", False):
        raise ConfigError(f"{type(model).__name__} is not a generative model: it has no prior to decode from.")


@torch.no_grad()
def manifold_images(model: Any, n: int = 20, y: torch.Tensor | int | None = None, dims: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """Decoded grid z_d = Phi^-1(u_d), u on an n x n grid of (0, 1), other dimensions at 0; (n*n, *shape).

    Row r, column c of the grid (row-major) has z[dims[0]] increasing with c and z[dims[1]] decreasing
    with r, as in a plot with z1 to the right and z2 upwards.
    """
    _check_generative(model)
    d = model.config.latent_dim
    if d < 2 or not all(0 <= i < d for i in dims) or dims[0] == dims[1]:
        raise ConfigError(f"A manifold grid needs two different latent dimensions of {d}; got dims={dims}.")
    model.eval()
    dev = _device(model)
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n                   # (n,) centres of n equal cells
    q = torch.special.ndtri(u).float().to(dev)                             # equal prior mass per cell
    z = torch.zeros(n, n, d, device=dev)
    z[:, :, dims[0]] = q.view(1, n)
    z[:, :, dims[1]] = q.flip(0).view(n, 1)
    cond = _labels(model, y, n * n)
    return _raw(model, model.decode(z.reshape(n * n, d), cond).mean()).cpu()


def _labels(model: Any, y: torch.Tensor | int | None, n: int) -> torch.Tensor | None:
    if not getattr(model, "is_conditional", False):
        return None
    if y is None:
        raise ConfigError(f"{type(model).__name__} is conditional: give the label y to draw.")
    if isinstance(y, int) or (isinstance(y, torch.Tensor) and y.dim() == 0):
        return torch.full((n,), int(y), dtype=torch.long, device=_device(model))
    return y.to(_device(model))


@torch.no_grad()
def interpolation_images(
    model: Any, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 10,
    y_a: torch.Tensor | None = None, y_b: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decoded codes (1 - t) embed(x_a) + t embed(x_b), t in [0, 1]; pairs (P, ...) -> (P, steps, *shape)."""
    if steps < 2:
        raise ConfigError(f"steps={steps} must be at least 2 (the two end points).")
    model.eval()
    dev = _device(model)
    x_a, x_b = x_a.to(dev), x_b.to(dev)
    za, zb = model.embed(x_a, y_a), model.embed(x_b, y_b)                  # (P, D)
    t = torch.linspace(0.0, 1.0, steps, device=dev).view(1, steps, 1)
    z = (1 - t) * za.unsqueeze(1) + t * zb.unsqueeze(1)                    # (P, steps, D)
    p = z.shape[0]
    cond = None
    if getattr(model, "is_conditional", False):
        cond = (y_a if y_a is not None else y_b).to(dev).repeat_interleave(steps, 0)
    out = _raw(model, model.decode(z.reshape(p * steps, -1), cond).mean())
    return out.reshape(p, steps, *out.shape[1:]).cpu()


@torch.no_grad()
def analogy_images(model: Any, x: torch.Tensor, y: torch.Tensor, classes: int | None = None) -> torch.Tensor:
    """Kingma et al. 2014, Fig. 1 (right): each row is an input, then its style z = E[z|x, y] decoded
    with every label 0..C-1; (R, ...) -> (R, 1 + C, *shape)."""
    if not getattr(model, "is_conditional", False):
        raise ConfigError(f"Analogies need a conditional model; {type(model).__name__} is not one.")
    model.eval()
    dev = _device(model)
    c = classes or model.config.num_classes
    x, y = x.to(dev), y.to(dev)
    z = model.embed(x, y)                                                  # (R, D) the inferred style
    dec = styles_by_class(z, c, lambda zz, yy: _raw(model, model.decode(zz, yy).mean()))
    first = _raw(model, x).reshape(z.shape[0], 1, *dec.shape[2:])
    return torch.cat([first, dec], dim=1).cpu()


@torch.no_grad()
def class_rows_images(model: Any, n: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
    """The same n prior draws of z decoded with every label: row = class (fix y, vary z),
    column = draw (fix z, vary y); (C, n, *shape)."""
    if not getattr(model, "is_conditional", False):
        raise ConfigError(f"Class rows need a conditional model; {type(model).__name__} is not one.")
    model.eval()
    dev = _device(model)
    c = model.config.num_classes
    z = torch.randn(n, model.config.latent_dim, generator=generator).to(dev)
    dec = styles_by_class(z, c, lambda zz, yy: _raw(model, model.decode(zz, yy).mean()))  # (n, C, ...)
    return dec.transpose(0, 1).contiguous().cpu()


def styles_by_class(z: torch.Tensor, classes: int, decode: Any) -> torch.Tensor:
    """Every style z (R, D) decoded with every label 0..classes-1 in one batch: ``decode(z_rows, labels)``
    -> (R * classes, *shape), returned as (R, classes, *shape). Shared by the one-model grids above and
    the two-layer M1+M2 stack (aekit.semi), whose decode goes through both generative models."""
    r = z.shape[0]
    labels = torch.arange(classes, device=z.device).repeat(r)              # (R*C,) row-major
    dec = decode(z.repeat_interleave(classes, 0), labels)
    return dec.reshape(r, classes, *dec.shape[1:])


@torch.no_grad()
def prior_sample_images(model: Any, n: int = 64, y: torch.Tensor | int | None = None,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Decoder means of n draws from the prior, (n, *shape)."""
    _check_generative(model)
    model.eval()
    return _raw(model, model.sample(n, _labels(model, y, n), generator=generator)).cpu()


# -- writers ------------------------------------------------------------------------------------
def _rows(model: Any, t: torch.Tensor) -> list:
    # (R, C, *shape) -> list of R arrays of C images
    return [_as_images(model, t[i]) for i in range(t.shape[0])]


def save_manifold(model: Any, path: str | Path, n: int = 20, y: torch.Tensor | int | None = None) -> Path:
    imgs = manifold_images(model, n, y)
    title = "learned 2-D manifold (grid through the Gaussian inverse CDF)" + (f", y = {y}" if y is not None else "")
    return plots.save_grid(_as_images(model, imgs), path, ncols=n, title=title)


def save_interpolations(model: Any, x_a: torch.Tensor, x_b: torch.Tensor, path: str | Path, steps: int = 10,
                        y_a: torch.Tensor | None = None, y_b: torch.Tensor | None = None) -> Path:
    t = interpolation_images(model, x_a, x_b, steps, y_a, y_b)
    return plots.show(plots.image_grid(_rows(model, t)), path, "interpolation between the codes of two inputs, one pair per row")


def save_prior_samples(model: Any, path: str | Path, n: int = 64, y: torch.Tensor | int | None = None,
                       generator: torch.Generator | None = None) -> Path:
    imgs = prior_sample_images(model, n, y, generator)
    return plots.save_grid(_as_images(model, imgs), path, ncols=8, title="samples from the prior")


def save_analogies(model: Any, x: torch.Tensor, y: torch.Tensor, path: str | Path) -> Path:
    t = analogy_images(model, x, y)
    return plots.show(plots.image_grid(_rows(model, t)), path, "input, then its style with y = 0, 1, ...")


def save_class_rows(model: Any, path: str | Path, n: int = 10, generator: torch.Generator | None = None) -> Path:
    t = class_rows_images(model, n, generator)
    return plots.show(plots.image_grid(_rows(model, t)), path, "rows: fixed y; columns: fixed z")
