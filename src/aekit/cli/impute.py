"""``aekit impute``: fill in missing values with a trained model.

Values missing in the data (NaN in a user's file, read for a model trained with ``-o
missing_values=true``) are filled in; a mask (``--pattern``, ``--fraction``) may hide known values too,
and the squared error on those is reported beside filling them with the training mean (with ``--input``,
the mean of the file's values the model is shown), with a picture observed | imputed | one draw |
original. ``--input FILE`` completes a user's own rows in their order, and ``--save`` writes the data
with its missing values filled in: with ``--input`` as the file holds it (its type, layout, a
table's column names and, in a CSV, the exact digits of every value it had).

The methods are those of ``aekit.evaluate.impute``: importance sampling or Metropolis-within-Gibbs for
the VAE family (both reach the model's exact conditional), pseudo-Gibbs, or iterated reconstruction for
any autoencoder. Values are hidden and filled in the space the model works in (after its
preprocessing; for a model trained with dynamic binarization, on one fixed binarization of the images).
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
from ..errors import ConfigError, DataError
from ..evaluate.impute import METHODS, PATTERNS, impute, missing_mask
from ..io import atomic_write_text
from .common import (ARRAY_SUFFIXES, add_model_data_args, check_new_file, csv_field, load_input, load_model, model_data,
                     model_inputs, run_info, save_array, split_of, use_run_data)


def register(sub: Any) -> None:
    p = sub.add_parser("impute", help="fill in missing values with a model; hide some to measure the error",
                       description="Impute missing values with a trained model. Values missing in the data (NaN, for "
                                   "a model trained with -o missing_values=true) are filled in; a mask (--pattern, "
                                   "--fraction) may hide known values too, and the squared error on those is reported "
                                   "beside filling them with the mean. --save writes the data with its missing values "
                                   "filled in (with --input: the file's rows, in order, as the file holds them).")
    add_model_data_args(p)
    p.add_argument("--input", help="a file (.npy, CSV/TSV/Parquet table, image folder) to complete instead of --data: its "
                                   "rows in order, all of them unless --limit")
    p.add_argument("--pattern", choices=["none", *PATTERNS],
                   help="which known values are hidden as well: none, random ones, the bottom rows, the right columns, "
                        "or a centred square (default: none with --input, else square for images, random for rows)")
    p.add_argument("--fraction", type=float, default=0.25,
                   help="share of each image or row hidden by --pattern (default 0.25)")
    p.add_argument("--method", choices=["auto", *METHODS], default="auto",
                   help="auto: importance sampling for a model trained on incomplete data (missing_values), "
                        "pseudo_gibbs for another variational model, else iterate")
    p.add_argument("--steps", type=int, default=200, help="importance samples, chain steps or iterations per image")
    p.add_argument("--burn-in", type=int, help="steps left out of the conditional mean (default: the first half)")
    p.add_argument("--limit", type=int, help="impute the first N rows (0: all; default 1000 with --data, all with "
                                             "--input)")
    p.add_argument("--n", type=int, default=16, help="images shown in the grid")
    p.add_argument("--seed", type=int, default=0, help="seed of the mask and of the chains")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--save", help="write the data with its missing values filled in, in the data's scale (.npy or .csv); "
                                  "values hidden by --pattern are written as they were")
    p.add_argument("--out", default="imputed.png", help="picture (.png); a .json report is written beside it")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.set_defaults(func=run_impute)


def run_impute(args: argparse.Namespace) -> int:
    from .denoise import write_grid

    out = check_new_file(args.out, args.force, (".png",))
    report_path = check_new_file(out.with_suffix(".json"), args.force)
    save = check_new_file(args.save, args.force, ARRAY_SUFFIXES) if args.save else None
    limit = args.limit if args.limit is not None else (0 if args.input else 1000)
    if args.n < 1 or limit < 0 or args.batch_size < 1:
        raise ConfigError("--n and --batch-size must be at least 1 and --limit at least 0.")
    model = load_model(args.model).eval()
    info = run_info(args.model)
    original = None   # with --input, the file's arrays as read (their own type, scale and layout)
    if args.input:    # the user's own rows, in order (the run's data is not needed)
        raw, labels, original = load_input(args.input, model, info, args.label_column)
        source, train_x = args.input, None
    else:
        use_run_data(args, info)
        data = model_data(args, model)
        split = split_of(data, args.split)
        raw, labels, source, train_x = split.x, split.y, f"{data.name} ({args.split})", data.train.x
    raw = raw[:limit] if limit else raw
    raw_shape = tuple(raw.shape[1:])
    pattern = args.pattern or ("none" if args.input else "square" if len(raw_shape) > 1 else "random")
    y = None   # a conditional model's labels; a model that predicts labels (M2) is not told them
    if getattr(model, "is_conditional", False) and not getattr(model, "uses_labels", False):
        if labels is None:
            raise DataError(f"{type(model).__name__} is conditioned on labels, and {source} has none"
                            + (" (a table's label column: --label-column)." if args.input else "."))
        y = labels[: raw.shape[0]]
    x = model_inputs(model, raw, seed=args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    known = ~torch.isnan(x)                        # values missing in the data are filled in, never scored
    hidden_by_mask = torch.zeros_like(known) if pattern == "none" else ~missing_mask(
        (x.shape[0], *raw_shape), pattern, args.fraction, generator=gen).reshape(x.shape)
    observed = known & ~hidden_by_mask
    # the first fill and the baseline: each value's mean over the training rows, or over the values of the
    # file the model is shown (never the hidden ones it is scored on)
    baseline = "input_mean" if train_x is None else "training_mean"
    fill = (torch.where(observed, x, math.nan) if train_x is None else model_inputs(model, train_x, seed=args.seed))
    fill = fill.nanmean(0).nan_to_num(0.0)
    result = impute(model, x, observed, y, method=args.method, steps=args.steps, burn_in=args.burn_in, fill=fill,
                    batch_size=args.batch_size, generator=gen)
    method = result.method
    scored = hidden_by_mask & known
    n_scored = int(scored.sum())

    def mse(filled: torch.Tensor) -> float:
        return float(((filled - x)[scored] ** 2).sum()) / n_scored

    metrics = {} if n_scored == 0 else {
        "mse_hidden_imputed": mse(result.mean), "mse_hidden_one_draw": mse(result.sample),
        f"mse_hidden_{baseline}": mse(torch.where(observed, x, fill))}
    pre = getattr(model, "preprocessing", None)
    to_raw = (lambda t: pre.invert(t)) if pre is not None else (lambda t: t)
    if save is not None:
        imputed = to_raw(result.mean).reshape(x.shape[0], *raw_shape)
        write_completed(save, raw, imputed, None if original is None else (original.x[: raw.shape[0]], original.columns))
    report = {"model": str(args.model), "data": source, "split": None if args.input else args.split,
              "n": int(x.shape[0]), "pattern": pattern, "fraction": None if pattern == "none" else args.fraction,
              "missing_in_data_share": float((~known).sum()) / known.numel(),
              "hidden_share": float(hidden_by_mask.sum()) / known.numel(),
              "scored_share": n_scored / known.numel(), "method": method, "steps": args.steps,
              "burn_in": None if method in ("importance", "iterate") else (
                  args.burn_in if args.burn_in is not None else args.steps // 2),
              "acceptance": result.acceptance, "effective_samples": result.effective_samples, "seed": args.seed,
              "metrics": metrics, "saved": None if save is None else str(save)}
    k = min(args.n, x.shape[0])
    gap = torch.full_like(x[:k], math.nan)   # hidden and missing values: drawn in red
    shown = [torch.where(observed[:k], x[:k], gap), result.mean[:k], result.sample[:k], torch.where(known[:k], x[:k], gap)]
    shown = [to_raw(t).reshape(k, *raw_shape) for t in shown]
    drawable = plots.as_images(shown[0], raw_shape) is not None
    if drawable:
        write_grid(out, raw_shape, *shown, title="observed (red: hidden or missing) | imputed | one draw | original")
    atomic_write_text(report_path, json.dumps(report, indent=2) + "\n")
    accept = "" if result.acceptance is None else f", acceptance {result.acceptance:.2f}"
    if result.effective_samples is not None:
        accept = f", {result.effective_samples:.1f} effective samples"
    print(f"{type(model).__name__}, {method} ({args.steps} steps{accept}), on {x.shape[0]} rows of {source}: "
          f"{100 * report['missing_in_data_share']:.1f}% of the values missing in the data, "
          f"{100 * report['hidden_share']:.1f}% hidden ({pattern}).")
    if metrics:
        print(f"  squared error per hidden value: imputed {metrics['mse_hidden_imputed']:.5f}, one draw "
              f"{metrics['mse_hidden_one_draw']:.5f}, {baseline.replace('_', ' ')} {metrics[f'mse_hidden_{baseline}']:.5f}")
    if save is not None:
        print(f"wrote the data with its missing values filled in to {save}")
    print(f"wrote {out} and {report_path}" if drawable else f"wrote {report_path} (items of shape {raw_shape} are "
          "not images: no picture)")
    return 0


def write_completed(path: Path, raw: torch.Tensor, imputed: torch.Tensor,
                    original: tuple[np.ndarray, tuple[str, ...] | None] | None = None) -> None:
    """Write the data with each missing value (NaN) replaced by its imputed value and every other value as
    it was. ``raw`` and ``imputed`` are (N, *item) in the data's scale; ``original``: the file's array as
    read and a table's column names, which keep their type, layout and (in a CSV) exact digits (an
    integer array has no missing values, so it is written as it was). Values hidden only to be scored
    are written back as they were."""
    from ..data.load import file_layout

    if original is None:
        done = torch.where(raw.isnan(), imputed, raw).numpy()
        return save_array(path, done if path.suffix.lower() == ".npy" else done.reshape(done.shape[0], -1),
                          column="x", fmt="%.9g")
    array, columns = original
    done = array
    if array.dtype.kind == "f":   # float32's shortest digits, not float64 noise, for a float64 table
        filled = file_layout(imputed, array.shape).numpy().astype(np.float32).astype(str).astype(np.float64)
        done = np.where(np.isnan(array), filled, array).astype(array.dtype)
    if path.suffix.lower() == ".npy":
        return save_array(path, done)
    rows = done.reshape(done.shape[0], -1).astype(np.int64 if done.dtype == bool else done.dtype)
    names = list(columns) if columns is not None else [f"x{i}" for i in range(rows.shape[1])]
    lines = [",".join(csv_field(n) for n in names)] + [",".join(map(repr, r)) for r in rows.tolist()]
    atomic_write_text(path, "\n".join(lines) + "\n")   # repr: the shortest digits that read back exactly
