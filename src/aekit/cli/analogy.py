"""``aekit analogy``: the analogy figure of a conditional model (Kingma, Rezende, Mohamed & Welling 2014,
Fig. 1): the style of test images decoded with every class, and every class decoded at the same styles."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from ..errors import ConfigError
from .common import (add_model_data_args, check_new_file, load_model, model_data, model_inputs, run_info, split_of,
                     use_run_data)


def register(sub: Any) -> None:
    p = sub.add_parser("analogy", help="fix the style z of test images and vary the class y; fix y and vary z (conditional models)",
                       description="Write the analogy figure of a conditional model (cvae, m2): on the left, each "
                                   "input then its inferred style decoded with every class; on the right, every class "
                                   "decoded at the same draws of z.")
    add_model_data_args(p)
    p.add_argument("--n", type=int, default=10, help="number of inputs (rows of the left panel)")
    p.add_argument("--styles", type=int, default=10, help="number of draws of z (columns of the right panel)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="analogies.png", help="picture (.png)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=run_analogy)


@torch.no_grad()
def run_analogy(args: argparse.Namespace) -> int:
    from ..evaluate.analogy import save_analogy_figure

    out = check_new_file(args.out, args.force)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {str(out)!r} must end in .png.")
    if args.n < 1 or args.styles < 1:
        raise ConfigError(f"--n {args.n} and --styles {args.styles} must be at least 1.")
    model = load_model(args.model)
    if not getattr(model, "is_conditional", False):
        raise ConfigError(f"aekit analogy needs a conditional model (cvae, m2); {type(model).__name__} is not one.")
    use_run_data(args, run_info(args.model))
    split = split_of(model_data(args, model), args.split)
    x = model_inputs(model, split.x[: args.n])
    y = None if split.y is None else split.y[: args.n]
    save_analogy_figure(model, x, y, out, n_styles=args.styles, seed=args.seed)
    print(f"wrote the analogies of {x.shape[0]} inputs and {args.styles} styles per class to {out}")
    return 0
