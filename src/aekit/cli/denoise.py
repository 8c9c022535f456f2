"""``aekit denoise``: corrupt clean images (or take already-noisy ones), run a trained model, and
report PSNR and SSIM (Wang et al. 2004) of the noisy and of the denoised images against the clean
ones, with a picture noisy | denoised | clean.

The corruption is the denoising autoencoder's q(x~|x) of Vincent et al. 2010 (``aekit.corruption``),
applied to the raw images in [0, 1] before the model's own preprocessing. By default a model that
was trained with a corruption is tested with that same corruption.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import plots
from ..corruption import CORRUPTIONS, corrupt
from ..errors import ConfigError, DataError
from ..io import atomic_write_text
from .common import (ARRAY_SUFFIXES, add_model_data_args, check_new_file, load_data, load_model, load_input, model_inputs, run_info, save_array,
                     split_of, use_run_data)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "denoise", help="corrupt images (or take noisy ones), denoise them with a model, report PSNR/SSIM and a grid",
        description="Denoise images with a trained model. Clean images come from --data/--split (or --clean); "
                    "they are corrupted with --noise/--level, or the noisy images are read from --noisy.")
    add_model_data_args(p)
    p.add_argument("--noise", choices=[c for c in CORRUPTIONS if c != "none"],
                   help="corruption to apply (default: the one the model was trained with)")
    p.add_argument("--level", type=float, help="masking/salt-and-pepper fraction nu, or Gaussian sigma")
    p.add_argument("--no-clip", action="store_true", help="do not clip Gaussian-noisy images to [0, 1]")
    p.add_argument("--noisy", help=".npy of already-noisy images (then --clean, optional, gives the references)")
    p.add_argument("--clean", help=".npy of the clean images matching --noisy")
    p.add_argument("--limit", type=int, help="use only the first N images (default: all of the split)")
    p.add_argument("--n", type=int, default=16, help="images shown in the grid")
    p.add_argument("--seed", type=int, default=0, help="seed of the corruption")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--out", default="denoised.png", help="picture noisy | denoised | clean (.png); a .json report is written beside it")
    p.add_argument("--save-denoised", help="also write the denoised images to this .npy")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.set_defaults(func=run_denoise)


def _noise_of(args: argparse.Namespace, model: Any) -> tuple[str, float]:
    """--noise/--level, or the corruption the model was trained with."""
    kind = args.noise or getattr(model.config, "corruption", "none")
    if kind == "none":
        raise ConfigError(f"{type(model).__name__} was not trained with a corruption; pass --noise (one of "
                          f"{', '.join(c for c in CORRUPTIONS if c != 'none')}) and --level, or --noisy FILE.")
    level = args.level if args.level is not None else (
        getattr(model.config, "corruption_level", None) if kind == getattr(model.config, "corruption", None) else None)
    if level is None:
        raise ConfigError(f"--noise {kind} needs --level (a fraction for masking/salt_pepper, sigma for gaussian).")
    return kind, float(level)


def _shape(model: Any) -> tuple[int, ...]:
    pre = getattr(model, "preprocessing", None)
    return tuple(pre.input_shape) if pre is not None else tuple(model.config.input_shape)


@torch.no_grad()
def denoise_images(model: Any, noisy: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Raw noisy images -> the model's reconstructions in the raw scale, (N, *raw shape)."""
    model.eval()
    pre = getattr(model, "preprocessing", None)
    out = []
    for i in range(0, noisy.shape[0], batch_size):
        xin = model_inputs(model, noisy[i:i + batch_size])
        rec = model.reconstruct(xin)
        out.append(pre.invert(rec) if pre is not None else rec)
    return torch.cat(out).reshape(noisy.shape)


def _panel(images: np.ndarray) -> np.ndarray:
    ncols = int(math.ceil(math.sqrt(images.shape[0])))
    rows = [images[i:i + ncols] for i in range(0, images.shape[0], ncols)]
    if rows[-1].shape[0] < ncols:                      # pad the last row with white
        pad = np.ones((ncols - rows[-1].shape[0], *images.shape[1:]), dtype=images.dtype)
        rows[-1] = np.concatenate([rows[-1], pad])
    return plots.image_grid(rows)


def write_grid(path: Path, shape: tuple[int, ...], *panels: torch.Tensor, title: str) -> Path:
    """Panels side by side (each a square-ish grid of the same images), separated by a white gap."""
    imgs = [plots.as_images(p, shape) for p in panels]
    if any(i is None for i in imgs):
        raise ConfigError(f"Items of shape {shape} cannot be drawn as images.")
    canvases = [_panel(i) for i in imgs]
    gap = np.ones((canvases[0].shape[0], 6, *canvases[0].shape[2:]), dtype=np.float32)
    joined = [canvases[0]]
    for c in canvases[1:]:
        joined += [gap, c]
    return plots.show(np.concatenate(joined, axis=1), path, title)


def run_denoise(args: argparse.Namespace) -> int:
    from ..evaluate.image import denoising_report

    out = check_new_file(args.out, args.force, (".png",))
    report_path = check_new_file(out.with_suffix(".json"), args.force)
    save_path = check_new_file(args.save_denoised, args.force, ARRAY_SUFFIXES) if args.save_denoised else None
    if args.n < 1 or (args.limit is not None and args.limit < 1) or args.batch_size < 1:
        raise ConfigError("--n, --limit and --batch-size must be at least 1.")
    model = load_model(args.model)
    shape = _shape(model)
    source: dict[str, Any]
    if args.noisy:
        noisy = load_input(args.noisy)[0]
        clean = load_input(args.clean)[0] if args.clean else None
        if clean is not None and clean.shape[0] != noisy.shape[0]:
            raise DataError(f"--noisy has {noisy.shape[0]} images but --clean has {clean.shape[0]}; expected the same number.")
        if clean is not None and clean[0].numel() != noisy[0].numel():
            raise DataError(f"--clean images have {clean[0].numel()} values but --noisy ones {noisy[0].numel()}; "
                            "expected the same images.")
        source = {"noisy": args.noisy, "clean": args.clean}
    else:
        use_run_data(args, run_info(args.model))
        data = load_data(args, nan_hint="aekit denoise needs complete data")
        clean = split_of(data, args.split).x
        kind, level = _noise_of(args, model)
        source = {"data": data.name, "split": args.split, "noise": kind, "level": level, "seed": args.seed,
                  "clipped": kind == "gaussian" and not args.no_clip}
        clean = clean[: args.limit] if args.limit else clean
        gen = torch.Generator().manual_seed(args.seed)
        noisy = corrupt(clean, kind, level, gen, clip=not args.no_clip)
    if args.noisy and args.limit:
        noisy, clean = noisy[: args.limit], (None if clean is None else clean[: args.limit])
    n_items = int(np.prod(shape))
    if noisy[0].numel() != n_items:
        raise DataError(f"Images of {noisy[0].numel()} values do not fit this model, which expects {shape}.")
    noisy = noisy.reshape(noisy.shape[0], *shape)
    clean = None if clean is None else clean.reshape(clean.shape[0], *shape)
    denoised = denoise_images(model, noisy, args.batch_size)
    in_unit_range = float(noisy.min()) >= -1e-6 and (clean is None or float(clean.min()) >= 0)
    if in_unit_range:
        denoised = denoised.clamp(0.0, 1.0)             # images live in [0, 1]
    metrics: dict[str, float] = {}
    if clean is not None:
        metrics = denoising_report(noisy, denoised, clean, shape=shape if len(shape) >= 2 else None)
    k = min(args.n, noisy.shape[0])
    panels = [noisy[:k], denoised[:k]] + ([clean[:k]] if clean is not None else [])
    write_grid(out, shape, *panels, title=" | ".join(["noisy", "denoised", "clean"][: len(panels)]))
    if save_path is not None:
        save_array(save_path, denoised.numpy())
    report = {"model": str(args.model), **source, "n": int(noisy.shape[0]), "metrics": metrics}
    atomic_write_text(report_path, json.dumps(report, indent=2) + "\n")
    what = f"{source.get('noise')} noise, level {source.get('level')}" if "noise" in source else f"noisy images from {args.noisy}"
    print(f"{type(model).__name__} on {noisy.shape[0]} images ({what}):")
    if metrics:
        print(f"  {'':10s} {'PSNR (dB)':>10s} {'SSIM':>8s}")
        for which in ("noisy", "denoised"):
            s = metrics.get(f"ssim_{which}")
            print(f"  {which:10s} {metrics[f'psnr_{which}']:10.3f} {'' if s is None else f'{s:8.4f}'}")
    else:
        print("  no clean images given (--clean): no PSNR/SSIM")
    print(f"wrote {out} and {report_path}" + (f" and {save_path}" if save_path else ""))
    return 0
