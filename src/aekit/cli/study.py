"""``aekit study latent-dim`` and ``aekit study latent-space``: train several models and compare them.

latent-dim: one variational model per N_z, test ELBO and log-likelihood against N_z (Kingma &
Welling 2013, Fig. 2). latent-space: an AE and a VAE of the same shape, their latent clouds as
numbers (centre offset, class-area ratio, prior mass in holes) and pictures side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import registry
from ..config import TrainConfig
from ..errors import ConfigError
from .common import add_data_args, load_data, parse_assignments


def _train_args(p: argparse.ArgumentParser, epochs: int) -> None:
    t = p.add_argument_group("training (every model of the study)")
    t.add_argument("--epochs", type=int, default=epochs)
    t.add_argument("--batch-size", type=int, default=100)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("-t", "--train-option", action="append", metavar="KEY=VALUE", help="any TrainConfig field")
    p.add_argument("--binarize", choices=["dynamic", "none"], default="dynamic",
                   help="dynamic: resample binary pixels every batch (test set binarized once); none: use the data as is")
    p.add_argument("--eval-n", type=int, default=0, help="evaluate on the first N test items only (0: all)")


def register(sub: Any) -> None:
    study = sub.add_parser("study", help="train several models and compare them (latent-dim, latent-space)",
                           description="Studies that train several models on the same data and compare them.")
    ss = study.add_subparsers(dest="study", metavar="STUDY", parser_class=type(study))
    ss.required = True

    d = ss.add_parser("latent-dim", help="test ELBO and log-likelihood against the latent size N_z",
                      description="Train one variational model per N_z and plot the test ELBO and the importance-"
                                  "sampled log-likelihood against N_z (Kingma & Welling 2013, Fig. 2).")
    add_data_args(d, required=True)
    d.add_argument("--dims", type=int, nargs="+", default=[2, 5, 10, 20, 50], help="latent sizes to train")
    d.add_argument("--model", default="vae", help="a registered model with a likelihood (vae, iwae, cvae)")
    d.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="any model config field")
    d.add_argument("--k", type=int, default=1000, help="importance samples for log p(x) (0: ELBO only)")
    d.add_argument("--out", default="runs/study-latent-dim", help="study folder (must not hold a study)")
    _train_args(d, epochs=20)
    d.set_defaults(func=run_latent_dim)

    s = ss.add_parser("latent-space", help="AE against VAE: centring, class areas and holes of the latent cloud",
                      description="Train an AE and a VAE of the same shape and compare their latent spaces in numbers "
                                  "and scatter plots.")
    add_data_args(s, required=True)
    s.add_argument("--latent-dim", type=int, default=2)
    s.add_argument("--hidden-dims", type=int, nargs="+", default=[512, 256])
    s.add_argument("--activation", default="relu")
    s.add_argument("--out", default="runs/study-latent-space", help="study folder (must not hold a study)")
    _train_args(s, epochs=10)
    s.set_defaults(func=run_latent_space)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    opts = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
            "device": args.device, "progress": False}
    opts.update(parse_assignments(args.train_option, "Trainer"))
    return TrainConfig.from_dict(opts)


def _check(args: argparse.Namespace) -> None:
    if args.eval_n < 0 or args.eval_n == 1:   # active units and the latent statistics need a variance
        raise ConfigError(f"--eval-n {args.eval_n} must be 0 (all) or a count of at least 2.")
    if (Path(args.out) / "results.json").exists():
        raise ConfigError(f"{args.out!r} already holds a study (results.json); choose another --out.")


def run_latent_dim(args: argparse.Namespace) -> int:
    from ..evaluate.studies import latent_dim_study

    _check(args)
    registry.get(args.model)
    if args.k < 0:
        raise ConfigError(f"--k {args.k} must be 0 (ELBO only) or a positive number of samples.")
    data = load_data(args, nan_hint="aekit study needs complete data")
    options = parse_assignments(args.option, "Model")
    rows = latent_dim_study(data, args.dims, model=args.model, model_options=options, train_config=_train_config(args),
                            k=args.k, binarize=args.binarize == "dynamic", eval_n=args.eval_n, out_dir=args.out)
    best = max(rows, key=lambda r: r.get("log_likelihood", r["elbo"]))
    print(f"best N_z = {best['latent_dim']}; results in {Path(args.out) / 'results.md'}, plot {Path(args.out) / 'latent_dim.png'}")
    return 0


def run_latent_space(args: argparse.Namespace) -> int:
    from ..evaluate.studies import latent_space_study

    _check(args)
    data = load_data(args, nan_hint="aekit study needs complete data")
    res = latent_space_study(data, latent_dim=args.latent_dim, hidden_dims=tuple(args.hidden_dims),
                             activation=args.activation, train_config=_train_config(args),
                             binarize=args.binarize == "dynamic", eval_n=args.eval_n, out_dir=args.out)
    for key in ("centre_offset", "class_area_ratio", "prior_hole_fraction", "fitted_hole_fraction"):
        vals = "  ".join(f"{n.upper()} {res[n][key]:.3g}" for n in ("ae", "vae") if key in res[n])
        print(f"{key:22s} {vals}")
    print(f"results in {Path(args.out) / 'results.md'}; scatter {Path(args.out) / 'latent_scatter.png'}")
    return 0
