"""Pictures every run writes: reconstructions, samples, the 2-D latent scatter and loss curves.

matplotlib with the Agg backend (no screen needed); every function writes one PNG atomically and
returns its path. Images are (N, C, H, W) or (N, H, W) tensors/arrays in [0, 1]; flat vectors whose
length is a square are shown as square images.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .io import atomic_write  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return path


def as_images(x: torch.Tensor | np.ndarray, shape: Sequence[int] | None = None) -> np.ndarray | None:
    """(N, ...) -> (N, H, W) or (N, H, W, 3) floats in [0, 1]; None when x cannot be shown as images."""
    a = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
    n = a.shape[0]
    if shape is not None and len(shape) == 3:
        a = a.reshape(n, *shape)
    if a.ndim == 2:
        side = int(round(math.sqrt(a.shape[1])))
        if side * side != a.shape[1]:
            return None
        a = a.reshape(n, side, side)
    if a.ndim == 4:
        a = a[:, 0] if a.shape[1] == 1 else (a.transpose(0, 2, 3, 1) if a.shape[1] == 3 else None)
    return None if a is None else np.clip(a, 0.0, 1.0)


def image_grid(rows: list[np.ndarray], titles: list[str] | None = None) -> np.ndarray:
    """Stack rows of images (each (n, H, W[, 3])) into one mosaic with a 1-pixel border."""
    n = max(r.shape[0] for r in rows)
    h, w = rows[0].shape[1:3]
    colour = rows[0].ndim == 4
    canvas = np.ones(((h + 1) * len(rows) + 1, (w + 1) * n + 1) + ((3,) if colour else ()), dtype=np.float32)
    for i, r in enumerate(rows):
        for j in range(r.shape[0]):
            canvas[1 + i * (h + 1): 1 + i * (h + 1) + h, 1 + j * (w + 1): 1 + j * (w + 1) + w] = r[j]
    return canvas


def save_grid(images: np.ndarray, path: str | Path, ncols: int | None = None, title: str | None = None) -> Path:
    """A square-ish grid of (N, H, W[, 3]) images."""
    n = images.shape[0]
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    pad = nrows * ncols - n
    if pad:
        images = np.concatenate([images, np.ones((pad, *images.shape[1:]), dtype=images.dtype)])
    rows = [images[i * ncols:(i + 1) * ncols] for i in range(nrows)]
    return show(image_grid(rows), path, title)


MISSING_COLOUR = (0.85, 0.15, 0.15)   # a missing value (NaN) in a picture


def show(canvas: np.ndarray, path: str | Path, title: str | None = None) -> Path:
    """A mosaic in grey levels (or colour) on [0, 1]; missing values (NaN) in red."""
    h, w = canvas.shape[:2]
    fig = plt.figure(figsize=(max(2.0, w / 28), max(2.0, h / 28 + (0.4 if title else 0))))
    ax = fig.add_axes([0, 0, 1, 1])
    if canvas.ndim == 3 and np.isnan(canvas).any():   # colour: paint the pixels with any channel missing
        canvas = canvas.copy()
        canvas[np.isnan(canvas).any(-1)] = MISSING_COLOUR
    ax.imshow(canvas, cmap=plt.get_cmap("gray").with_extremes(bad=MISSING_COLOUR), vmin=0, vmax=1,
              interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def reconstructions(x: torch.Tensor, x_hat: torch.Tensor, path: str | Path, shape: Sequence[int] | None = None) -> Path | None:
    """Inputs on the odd rows, their reconstructions on the even rows."""
    a, b = as_images(x, shape), as_images(x_hat, shape)
    if a is None or b is None:
        return None
    ncols = min(16, a.shape[0])
    rows = []
    for i in range(0, a.shape[0], ncols):
        rows += [a[i:i + ncols], b[i:i + ncols]]
    return show(image_grid(rows), path, "inputs (odd rows) and reconstructions (even rows)")


def latent_scatter(z: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray | None, path: str | Path,
                   title: str = "latent space", class_names: Sequence[str] | None = None) -> Path:
    """2-D scatter of the codes coloured by label; codes with more than 2 dimensions are projected by PCA."""
    z = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
    axes_label = ("z1", "z2")
    if z.shape[1] > 2:
        zc = z - z.mean(0)
        _, _, vt = np.linalg.svd(zc, full_matrices=False)
        z = zc @ vt[:2].T
        axes_label = ("PC1 of z", "PC2 of z")
    elif z.shape[1] == 1:
        z = np.concatenate([z, np.zeros_like(z)], 1)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if labels is not None:
        lab = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        sc = ax.scatter(z[:, 0], z[:, 1], c=lab, cmap="tab10", s=4, alpha=0.7)
        handles, names = sc.legend_elements()
        if class_names is not None:
            names = [class_names[int(v)] for v in np.unique(lab)]
        ax.legend(handles, names, fontsize=7, markerscale=0.8, loc="best")
    else:
        ax.scatter(z[:, 0], z[:, 1], s=4, alpha=0.7)
    ax.set_xlabel(axes_label[0])
    ax.set_ylabel(axes_label[1])
    ax.set_title(title)
    return _save(fig, path)


def loss_curves(history: list[dict[str, float]], path: str | Path) -> Path:
    """One panel per loss term, train and validation against epoch."""
    terms = sorted({k[len("train_"):] for row in history for k in row if k.startswith("train_")})
    terms = [t for t in terms if t == "loss"] + [t for t in terms if t != "loss"]
    fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms), 3), squeeze=False)
    epochs = [row["epoch"] for row in history]
    for ax, t in zip(axes[0], terms):
        for split in ("train", "val"):
            ys = [row.get(f"{split}_{t}") for row in history]
            if any(v is not None for v in ys):
                ax.plot(epochs, [np.nan if v is None else v for v in ys], label=split)
        ax.set_title(t)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)
