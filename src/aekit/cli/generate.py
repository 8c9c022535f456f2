"""``aekit sample``, ``aekit reconstruct`` and ``aekit encode``: use a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from .. import plots
from ..errors import ConfigError, DataError
from .common import (ARRAY_SUFFIXES, add_data_args, check_new_file, load_input, load_model, model_data, model_inputs,
                     run_info, save_array, split_of, use_run_data)


IMAGE_OR_ARRAY = (".png", ".npy")


def register(sub: Any) -> None:
    s = sub.add_parser("sample", help="draw samples from a generative model's prior and save a grid (and .npy)")
    s.add_argument("model", help="run folder or saved model folder")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--label", type=int, help="class to generate (conditional models)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="samples.png", help="picture (.png) or array (.npy)")
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.set_defaults(func=run_sample)

    r = sub.add_parser("reconstruct", help="reconstruct inputs and save inputs | reconstructions as a grid")
    r.add_argument("model")
    add_data_args(r)
    r.add_argument("--input", help="a .npy file, CSV/TSV/Parquet table or image folder of inputs instead of --data (rows in its order)")
    r.add_argument("--split", default="test", choices=["train", "val", "test"])
    r.add_argument("--n", type=int, default=32)
    r.add_argument("--out", default="reconstructions.png", help="picture (.png) or array (.npy)")
    r.add_argument("--force", action="store_true")
    r.set_defaults(func=run_reconstruct)

    e = sub.add_parser("encode", help="write the deterministic codes (posterior means) of a data split to .npy or .csv")
    e.add_argument("model")
    add_data_args(e)
    e.add_argument("--input", help="a .npy file, CSV/TSV/Parquet table or image folder of inputs instead of --data (rows in its order)")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--out", default="embeddings.npy", help=".npy or .csv")
    e.add_argument("--labels-out", help="also write the labels (.npy or .csv)")
    e.add_argument("--batch-size", type=int, default=1000)
    e.add_argument("--force", action="store_true")
    e.set_defaults(func=run_encode)


def _inputs(args: argparse.Namespace, model: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Raw inputs and labels from --input or --data/--split."""
    if getattr(args, "input", None):
        x, y, _ = load_input(args.input, model, run_info(args.model), args.label_column)
        return x, y
    use_run_data(args, run_info(args.model))
    split = split_of(model_data(args, model), args.split)
    return split.x, split.y


def _raw(model: Any, x: torch.Tensor) -> torch.Tensor:
    pre = getattr(model, "preprocessing", None)
    return pre.invert(x) if pre is not None else x


def _shape(model: Any) -> tuple[int, ...]:
    pre = getattr(model, "preprocessing", None)
    return tuple(pre.input_shape) if pre is not None else tuple(model.config.input_shape)


def _write_images(path: Path, images: torch.Tensor, model: Any, ncols: int, title: str) -> None:
    if path.suffix.lower() == ".npy":
        save_array(path, images.numpy())
        return
    grid = plots.as_images(images, _shape(model))
    if grid is None:
        raise ConfigError(f"These {tuple(images.shape[1:])}-shaped items cannot be drawn; use an --out ending in .npy.")
    plots.save_grid(grid, path, ncols=ncols, title=title)


@torch.no_grad()
def run_sample(args: argparse.Namespace) -> int:
    out = check_new_file(args.out, args.force, IMAGE_OR_ARRAY)
    model = load_model(args.model)
    if args.n < 1:
        raise ConfigError(f"--n {args.n} must be at least 1.")
    y = None
    if args.label is not None:
        if not model.is_conditional:
            raise ConfigError(f"--label needs a conditional model; {type(model).__name__} is not one.")
        if not 0 <= args.label < model.config.num_classes:
            raise ConfigError(f"--label {args.label} is not a class of this model (0 to {model.config.num_classes - 1}).")
        y = torch.full((args.n,), args.label, dtype=torch.long)
    elif model.is_conditional:
        y = torch.arange(args.n) % model.config.num_classes
    samples = _raw(model, model.sample(args.n, y, generator=torch.Generator().manual_seed(args.seed)))
    _write_images(out, samples, model, ncols=8, title=f"{args.n} samples" + (f" of class {args.label}" if y is not None and args.label is not None else ""))
    print(f"wrote {args.n} samples to {out}")
    return 0


@torch.no_grad()
def run_reconstruct(args: argparse.Namespace) -> int:
    out = check_new_file(args.out, args.force, IMAGE_OR_ARRAY)
    if args.n < 1:
        raise ConfigError(f"--n {args.n} must be at least 1.")
    model = load_model(args.model)
    raw, y = _inputs(args, model)
    raw, y = raw[: args.n], (None if y is None else y[: args.n])
    x = model_inputs(model, raw)
    yl = y if (model.is_conditional or model.uses_labels) else None
    recon = _raw(model, model.reconstruct(x, yl))
    if out.suffix.lower() == ".npy":
        save_array(out, recon.numpy())
    elif plots.reconstructions(_raw(model, x), recon, out, _shape(model)) is None:
        raise ConfigError("These items cannot be drawn; use an --out ending in .npy.")
    print(f"wrote {x.shape[0]} reconstructions to {out}")
    return 0


@torch.no_grad()
def run_encode(args: argparse.Namespace) -> int:
    from ..evaluate.report import embed_all

    out = check_new_file(args.out, args.force, ARRAY_SUFFIXES)
    labels_out = check_new_file(args.labels_out, args.force, ARRAY_SUFFIXES) if args.labels_out else None
    model = load_model(args.model)
    raw, y = _inputs(args, model)
    if labels_out is not None and y is None:
        raise DataError("--labels-out was given but these inputs have no labels.")
    x = model_inputs(model, raw)
    yl = y if (model.is_conditional or model.uses_labels) else None
    z = embed_all(model, x, yl, args.batch_size).numpy()
    save_array(out, z)
    if labels_out is not None:
        save_array(labels_out, y.numpy().reshape(-1, 1) if labels_out.suffix.lower() != ".npy" else y.numpy(), "label")
    print(f"wrote {z.shape[0]} x {z.shape[1]} embeddings to {out}")
    return 0
