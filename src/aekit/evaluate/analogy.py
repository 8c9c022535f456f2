"""Analogies of a conditional generative model (Kingma, Rezende, Mohamed & Welling 2014, "Semi-supervised
Learning with Deep Generative Models", Fig. 1 and 5): fix the style z = E[z | x, y] of a test image and
vary the class y over all classes; fix y and vary z (the same prior draws of z decoded with every class).

Works for any model with ``is_conditional`` (the conditional VAE, M2). The image grids are those of
``aekit.evaluate.figures``; this module chooses the labels the style is inferred with (the given ones,
or the model's own prediction argmax q(y|x) where a label is missing and the model has ``predict``,
as M2 does) and writes both panels into one picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .. import plots  # noqa: E402
from ..errors import ConfigError, DataError  # noqa: E402
from ..nn import model_device  # noqa: E402
from ..io import atomic_write  # noqa: E402
from .figures import analogy_images, class_rows_images  # noqa: E402


def _labels(model: Any, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """The labels to infer each style with: y, and argmax q(y|x) where y is None or -1."""
    dev = model_device(model)
    missing = y is None or bool((y < 0).any())
    if not missing:
        return y.to(dev)
    if not hasattr(model, "predict"):
        raise DataError(
            f"{type(model).__name__} infers the style z from an image and its label: give the labels of the inputs."
        )
    pred = model.predict(x.to(dev))
    return pred if y is None else torch.where(y.to(dev) >= 0, y.to(dev), pred)


@torch.no_grad()
def analogy_grids(model: Any, x: torch.Tensor, y: torch.Tensor | None = None, n_styles: int = 10,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Both grids, decoder means in the data's raw scale.

    ``analogies`` (R, 1 + C, *shape): row r is input x_r, then its style decoded with y = 0 .. C-1.
    ``styles`` (C, n_styles, *shape): row c is class c decoded at the same n_styles draws z ~ N(0, I).
    """
    if not getattr(model, "is_conditional", False):
        raise ConfigError(f"Analogies need a conditional model (such as cvae or m2); {type(model).__name__} is not one.")
    if n_styles < 1:
        raise ConfigError(f"n_styles={n_styles} must be at least 1.")
    model.eval()
    labels = _labels(model, x, y)
    return analogy_images(model, x, labels), class_rows_images(model, n_styles, generator)


def save_analogy_figure(model: Any, x: torch.Tensor, y: torch.Tensor | None, path: str | Path,
                        n_styles: int = 10, seed: int = 0) -> Path:
    """One PNG: the analogies on the left, the class rows on the right; returns its path."""
    analogies, styles = analogy_grids(model, x, y, n_styles, torch.Generator().manual_seed(seed))
    pre = getattr(model, "preprocessing", None)
    shape = tuple(pre.input_shape) if pre is not None else tuple(model.config.input_shape)
    return save_analogy_panels(analogies, styles, shape, path)


def save_analogy_panels(analogies: torch.Tensor, styles: torch.Tensor, shape: tuple[int, ...], path: str | Path) -> Path:
    """Write the two grids of ``analogy_grids`` (items of ``shape``, values in [0, 1]) side by side."""
    panels = []
    for grid in (analogies, styles):
        rows = [plots.as_images(grid[i], shape) for i in range(grid.shape[0])]
        if any(r is None for r in rows):
            raise ConfigError(f"Items of shape {shape} cannot be drawn as images.")
        panels.append(plots.image_grid(rows))
    h = max(p.shape[0] for p in panels)
    w = sum(p.shape[1] for p in panels)
    fig, axes = plt.subplots(1, 2, figsize=(max(4.0, w / 26), max(2.5, h / 26 + 0.6)),
                             gridspec_kw={"width_ratios": [p.shape[1] for p in panels]})
    titles = ("fix z of a test image (left column), vary y", "fix y (row), vary z ~ N(0, I) (column)")
    for ax, canvas, title in zip(axes, panels, titles):
        ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return path
