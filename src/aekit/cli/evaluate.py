"""``aekit evaluate``: the metrics that apply to a trained model on a data split, and its figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from .common import (add_model_data_args, check_new_file, load_model, model_data, model_inputs, resolve_model_dir,
                     run_info, split_of, use_run_data)


def register(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="reconstruction error, ELBO, log-likelihood and loss terms on a split",
                       description="Evaluate a saved model or run folder on a data split and write evaluation.json and figures.")
    add_model_data_args(p)
    p.add_argument("--k", type=int, default=0, help="importance samples for the log-likelihood (models with a likelihood; e.g. 5000)")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="(sample, item) pairs per pass of the log-likelihood: memory against speed (default 1024)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--out", help="folder for evaluation.json and figures (default: the run folder)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--force", action="store_true", help="replace an earlier evaluation.json (and its figures) in --out")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate_model, write_figures
    from ..train import read_metrics

    model_dir = resolve_model_dir(args.model)
    out = Path(args.out) if args.out else (model_dir.parent if model_dir.name in ("best", "last") else model_dir)
    check_new_file(out / "evaluation.json", args.force)   # before the evaluation, which can take long
    model = load_model(model_dir)
    info = run_info(args.model)
    use_run_data(args, info)
    data = model_data(args, model)
    split = split_of(data, args.split)
    x = model_inputs(model, split.x)
    metrics = evaluate_model(model, x, split.y, k=args.k, batch_size=args.batch_size, raw_x=split.x,
                             chunk_size=args.chunk_size)
    out.mkdir(parents=True, exist_ok=True)
    report = {"model": str(model_dir), "data": data.name, "split": args.split, "metrics": metrics}
    atomic_write_text(out / "evaluation.json", json.dumps(report, indent=2) + "\n")
    print(f"{type(model).__name__} on {data.name} ({args.split}, {int(metrics['n'])} examples):")
    for key, value in metrics.items():
        if key == "kl_per_dim":   # one number per latent dimension, largest first
            print(f"  {key:24s} " + " ".join(f"{v:.3g}" for v in sorted(value, reverse=True)) + " (sorted)")
        elif isinstance(value, list):   # e.g. active units per stochastic layer, bottom first
            print(f"  {key:24s} " + " + ".join(f"{v:g}" for v in value))
        elif key != "n":
            print(f"  {key:24s} {value:.6g}")
    if not args.no_figures:
        history = read_metrics(out / "metrics.csv") if (out / "metrics.csv").is_file() else None
        figs = write_figures(model, x, split.y, out / "figures", history, data.class_names)
        print(f"figures: {', '.join(str(f) for f in figs)}")
    return 0
