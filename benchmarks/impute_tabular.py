"""Imputing values missing completely at random in small tables: ``aekit.sklearn.VAEImputer`` (MIWAE,
Mattei & Frellsen 2019, trained on the incomplete table) beside scikit-learn's SimpleImputer (column
mean), KNNImputer (5 neighbours) and IterativeImputer (Bayesian ridge, 10 rounds).

Data bundled with scikit-learn (no network): ``digits`` (1797 x 64, scaled to [0, 1]: a Bernoulli
decoder) and ``breast_cancer`` (569 x 30, standardized: a Gaussian decoder with a learned variance).
A share of the values (``--rates``) is hidden at random with a fixed seed; every method sees the same
table and is scored by the mean squared error on the hidden values, in the table's units. The MIWAE
paper's tables use other data and preprocessing, so no published number is set beside these.

    nice -n 10 python benchmarks/impute_tabular.py
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import command, machine, write_results  # noqa: E402

from aekit.sklearn import VAEImputer  # noqa: E402


def tables() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_breast_cancer, load_digits

    bc = load_breast_cancer().data
    return {"digits": load_digits().data / 16.0, "breast_cancer": (bc - bc.mean(0)) / bc.std(0)}


def methods(seed: int) -> dict:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

    return {"SimpleImputer (mean)": SimpleImputer(), "KNNImputer (5)": KNNImputer(),
            "IterativeImputer (10 rounds)": IterativeImputer(max_iter=10, random_state=seed),
            "VAEImputer (defaults)": VAEImputer(random_state=seed)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", type=float, nargs="+", default=[0.3, 0.5])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"$ {command()}\nmachine: {machine()}", flush=True)
    rows = []
    for name, X in tables().items():
        for rate in args.rates:
            hidden = np.random.default_rng(args.seed).random(X.shape) < rate
            holes = np.where(hidden, np.nan, X)
            for label, est in methods(args.seed).items():
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")   # IterativeImputer's convergence warning
                    filled = est.fit_transform(holes)
                seconds = time.perf_counter() - t0
                mse = float(np.mean((filled[hidden] - X[hidden]) ** 2))
                rows.append({"data": name, "rows": X.shape[0], "columns": X.shape[1], "missing": rate,
                             "method": label, "mse_hidden": mse, "seconds": seconds})
                print(f"{name:13s} {rate:.0%} {label:30s} mse {mse:.4f}  {seconds:.1f}s", flush=True)
    table = "\n".join(f"| {r['data']} ({r['rows']} x {r['columns']}) | {100 * r['missing']:.0f}% | {r['method']} | "
                      f"{r['mse_hidden']:.4f} | {r['seconds']:.1f} s |" for r in rows)
    md = (f"# Imputing values missing at random in small tables\n\n`{command()}`\n\nmachine: {machine()}\n\n"
          "Mean squared error on the hidden values (digits in [0, 1]; breast_cancer standardized). "
          "VAEImputer with its defaults: latent 10, hidden 128-128, k = 20, 100 epochs, batch 64, 1000 importance "
          "samples per row. No published number is set beside these.\n\n"
          "| data | missing | method | MSE on hidden values | time |\n|---|---|---|---|---|\n" + table + "\n")
    print(md)
    write_results("impute_tabular", md, {"command": command(), "machine": machine(), "seed": args.seed, "rows": rows})


if __name__ == "__main__":
    main()
