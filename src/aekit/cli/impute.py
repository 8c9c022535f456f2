"""``aekit impute``: fill in missing values with a trained model.

Values missing in the data (NaN in a user's file, read for a model trained with ``-o
missing_values=true``) are filled in; a mask (``--pattern``, ``--fraction``) may hide known values too,
and the squared error on those is reported beside filling them with the training mean (with ``--input``,
the mean of the file's observed values), with a picture
observed | imputed | one draw | original. ``--input FILE`` completes a user's own rows in their order,
and ``--save`` writes the completed data in the data's scale.

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

import torch

from .. import plots
from ..data.formats import TABLE_SUFFIXES, table_columns
from ..errors import ConfigError, DataError
from ..evaluate.impute import METHODS, PATTERNS, impute, missing_mask
from ..io import atomic_write_text
from .common import (ARRAY_SUFFIXES, add_model_data_args, check_new_file, load_data, load_input, load_model, model_inputs,
                     run_info, save_array, split_of, takes_missing, use_run_data)


def register(sub: Any) -> None:
    p = sub.add_parser("impute", help="fill in missing values with a model; hide some to measure the error",
                       description="Impute missing values with a trained model. Values missing in the data (NaN, for "
                                   "a model trained with -o missing_values=true) are filled in; a mask (--pattern, "
                                   "--fraction) may hide more, and the squared error on those is reported beside "
                                   "filling them with the training mean. --save writes the completed data (--input: a file's rows, "
                                   "in order).")
    add_model_data_args(p)
    p.add_argument("--input", help=".npy file or CSV/TSV/Parquet table to complete instead of --data (rows in "
                                   "its order, all of them unless --limit)")
    p.add_argument("--pattern", choices=["none", *PATTERNS],
                   help="which known values are hidden as well: none, random ones, the bottom rows, the right columns, "
                        "or a centred square (default: square with --data, none with --input)")
    p.add_argument("--fraction", type=float, default=0.25, help="share of each image or row hidden by --pattern (default 0.25)")
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
    p.add_argument("--save", help="write the data completed with the imputed values, in the data's scale (.npy or .csv)")
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
    pattern = args.pattern or ("none" if args.input else "square")
    model = load_model(args.model).eval()
    info = run_info(args.model)
    missing = takes_missing(model)
    if args.input:   # the user's own rows (the run's data is not needed)
        raw, labels, source = load_input(args.input, "input", missing, info.get("label_column")), None, args.input
        raw = raw[:limit] if limit else raw
        baseline, fill = "input_mean", model_inputs(model, raw, seed=args.seed).nanmean(0).nan_to_num(0.0)
    else:
        use_run_data(args, info)
        data = load_data(args, missing_values=missing)
        split = split_of(data, args.split)
        raw, labels, source = split.x, split.y, f"{data.name} ({args.split})"
        raw = raw[:limit] if limit else raw
        baseline, fill = "training_mean", model_inputs(model, data.train.x, seed=args.seed).nanmean(0)
    y = None   # a conditional model's labels; a model that predicts labels (M2) is not told them
    if getattr(model, "is_conditional", False) and not getattr(model, "uses_labels", False):
        if labels is None:
            raise DataError(f"{type(model).__name__} is conditioned on labels, and {source} has none.")
        y = labels[: raw.shape[0]]
    x = model_inputs(model, raw, seed=args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    raw_shape = tuple(raw.shape[1:])
    known = ~torch.isnan(x)                        # values missing in the data are filled in, never scored
    hidden_by_mask = torch.zeros_like(known) if pattern == "none" else ~missing_mask(
        (x.shape[0], *raw_shape), pattern, args.fraction, generator=gen).reshape(x.shape)
    observed = known & ~hidden_by_mask
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
        kept = observed.reshape(x.shape[0], *raw_shape)   # the observed values exactly as they were read
        completed = torch.where(kept, raw, to_raw(result.mean).reshape(x.shape[0], *raw_shape)).numpy()
        names = table_columns(args.input, info.get("label_column")) if args.input and Path(args.input).suffix.lower() \
            in TABLE_SUFFIXES else None   # a table's own column names
        save_array(save, completed if save.suffix.lower() == ".npy" else completed.reshape(x.shape[0], -1), column="x",
                   names=names)
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
        print(f"wrote the completed data to {save}")
    print(f"wrote {out} and {report_path}" if drawable else f"wrote {report_path} (items of shape {raw_shape} are "
          "not images: no picture)")
    return 0

