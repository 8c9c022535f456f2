"""``aekit impute``: hide part of each image (or row), fill it in with a trained model, and report the
error on the hidden values beside filling them with the training mean, with a picture
observed | imputed | one draw | original.

The methods are those of ``aekit.evaluate.impute``: importance sampling or Metropolis-within-Gibbs for
the VAE family (both reach the model's exact conditional), pseudo-Gibbs, or iterated reconstruction for
any autoencoder. Values are
hidden and filled in the space the model works in (after its preprocessing; for a model trained with
dynamic binarization, on one fixed binarization of the images).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from .. import plots
from ..errors import ConfigError
from ..evaluate.impute import METHODS, PATTERNS, impute, missing_mask
from ..io import atomic_write_text
from .common import add_model_data_args, check_new_file, load_data, load_model, model_inputs, run_info, split_of, use_run_data


def register(sub: Any) -> None:
    p = sub.add_parser("impute", help="hide part of each image, fill it in with a model, report the error and a grid",
                       description="Impute missing values with a trained model: a mask (--pattern, --fraction) hides "
                                   "values of --split; the model fills them in; the squared error on the hidden values "
                                   "is reported beside filling them with the training mean.")
    add_model_data_args(p)
    p.add_argument("--pattern", default="square", choices=PATTERNS,
                   help="which values are hidden: random ones, the bottom rows, the right columns, or a centred square")
    p.add_argument("--fraction", type=float, default=0.25, help="share of each image hidden (default 0.25)")
    p.add_argument("--method", choices=["auto", *METHODS], default="auto",
                   help="auto: importance sampling for a model trained on incomplete data (missing_values), "
                        "pseudo_gibbs for another variational model, else iterate")
    p.add_argument("--steps", type=int, default=200, help="importance samples, chain steps or iterations per image")
    p.add_argument("--burn-in", type=int, help="steps left out of the conditional mean (default: the first half)")
    p.add_argument("--limit", type=int, default=1000, help="impute the first N images of the split (0: all)")
    p.add_argument("--n", type=int, default=16, help="images shown in the grid")
    p.add_argument("--seed", type=int, default=0, help="seed of the mask and of the chains")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--out", default="imputed.png", help="picture (.png); a .json report is written beside it")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.set_defaults(func=run_impute)


def run_impute(args: argparse.Namespace) -> int:
    from .denoise import write_grid

    out = check_new_file(args.out, args.force, (".png",))
    report_path = check_new_file(out.with_suffix(".json"), args.force)
    if args.n < 1 or args.limit < 0 or args.batch_size < 1:
        raise ConfigError("--n and --batch-size must be at least 1 and --limit at least 0.")
    model = load_model(args.model).eval()
    use_run_data(args, run_info(args.model))
    data = load_data(args)
    split = split_of(data, args.split)
    raw = split.x[: args.limit] if args.limit else split.x
    y = None   # a conditional model's labels; a model that predicts labels (M2) is not told them
    if getattr(model, "is_conditional", False) and not getattr(model, "uses_labels", False) and split.y is not None:
        y = split.y[: raw.shape[0]]
    x = model_inputs(model, raw, seed=args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    raw_shape = tuple(raw.shape[1:])
    observed = missing_mask((x.shape[0], *raw_shape), args.pattern, args.fraction, generator=gen).reshape(x.shape)
    train_mean = model_inputs(model, data.train.x, seed=args.seed).mean(0)
    result = impute(model, x, observed, y, method=args.method, steps=args.steps, burn_in=args.burn_in, fill=train_mean,
                    batch_size=args.batch_size, generator=gen)
    method = result.method
    hidden = ~observed
    n_hidden = int(hidden.sum())

    def mse(filled: torch.Tensor) -> float:
        return float(((filled - x)[hidden] ** 2).sum()) / max(1, n_hidden)

    metrics = {"mse_hidden_imputed": mse(result.mean), "mse_hidden_one_draw": mse(result.sample),
               "mse_hidden_training_mean": mse(torch.where(observed, x, train_mean))}
    report = {"model": str(args.model), "data": data.name, "split": args.split, "n": int(x.shape[0]),
              "pattern": args.pattern, "fraction": args.fraction, "hidden_share": n_hidden / hidden.numel(),
              "method": method, "steps": args.steps,
              "burn_in": None if method in ("importance", "iterate") else (
                  args.burn_in if args.burn_in is not None else args.steps // 2),
              "acceptance": result.acceptance, "effective_samples": result.effective_samples, "seed": args.seed,
              "metrics": metrics}
    k = min(args.n, x.shape[0])
    pre = getattr(model, "preprocessing", None)
    shown = [torch.where(observed, x, torch.full_like(x, 0.5)), result.mean, result.sample, x]
    shown = [(pre.invert(t[:k]) if pre is not None else t[:k]).reshape(k, *raw_shape) for t in shown]
    drawable = plots.as_images(shown[0], raw_shape) is not None
    if drawable:
        write_grid(out, raw_shape, *shown, title="observed (grey: hidden) | imputed | one draw | original")
    atomic_write_text(report_path, json.dumps(report, indent=2) + "\n")
    accept = "" if result.acceptance is None else f", acceptance {result.acceptance:.2f}"
    if result.effective_samples is not None:
        accept = f", {result.effective_samples:.1f} effective samples"
    print(f"{type(model).__name__}, {method} ({args.steps} steps{accept}), on {x.shape[0]} {args.split} images with "
          f"{100 * report['hidden_share']:.1f}% of the values hidden ({args.pattern}):")
    print(f"  squared error per hidden value: imputed {metrics['mse_hidden_imputed']:.5f}, one draw "
          f"{metrics['mse_hidden_one_draw']:.5f}, training mean {metrics['mse_hidden_training_mean']:.5f}")
    print(f"wrote {out} and {report_path}" if drawable else f"wrote {report_path} (items of shape {raw_shape} are "
          "not images: no picture)")
    return 0
