"""How the decoder's initial output bias decides how many latent units a VAE keeps.

Trains the one-stochastic-layer model of Burda et al. (784-200-200-50, tanh, Bernoulli decoder, Glorot
init, Adam eps 1e-4, batch 100, lr 1e-3, the VAE objective, dynamically binarized MNIST) for a few
passes from two starts that differ only in the decoder's output bias: zero, and the logit of each
pixel's training mean (``output_bias="data"``, as in the paper's code). Every ``--every`` passes it
prints the training ELBO of the pass and the active units (Cov_x E_q[u] > 0.01) on the first
``--au-n`` test images. Writes benchmarks/results/output_bias_start.{md,json}.

    nice -n 10 python benchmarks/output_bias_start.py --epochs 30
    python benchmarks/output_bias_start.py --only data      # one start per process, two cores: run both
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, command, data_dir, machine, write_results  # noqa: E402
from iwae_mnist import load  # noqa: E402

from aekit.config import TrainConfig  # noqa: E402
from aekit.evaluate.latent import active_units  # noqa: E402
from aekit.models.iwae import IWAE, IWAEConfig  # noqa: E402
from aekit.train import fit  # noqa: E402

STARTS = ("zero", "data")


def run(bias: str, x: torch.Tensor, x_au: torch.Tensor, epochs: int, every: int, seed: int) -> list[dict]:
    torch.manual_seed(seed)
    model = IWAE(IWAEConfig(input_shape=(784,), k=1, objective="vae", output_bias=bias))
    tc = TrainConfig(epochs=epochs, batch_size=100, lr=1e-3, optimizer="adam", betas=(0.9, 0.999), eps=1e-4,
                     seed=seed, progress=False, schedule="none")
    rows: list[dict] = []

    def report(row: dict) -> None:
        e = int(row["epoch"])
        if e % every and e not in (1, epochs):
            return
        model.eval()
        au = active_units(model, x_au).count
        model.train()
        rows.append({"epoch": e, "train_elbo": row["train_elbo"], "active_units": au})
        print(f"{bias}: pass {e}  ELBO {row['train_elbo']:.2f}  active units {au}", flush=True)

    fit(model, x, config=tc, binarize=True, on_epoch_end=report)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--every", type=int, default=5, help="report every this many passes")
    p.add_argument("--au-n", type=int, default=2000, help="test images for the active-unit count")
    p.add_argument("--only", choices=STARTS, help="train one start (its rows are merged into the results file)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x, x_test = load("dynamic", data_dir(args.data_dir))
    runs = {}
    for bias in (args.only,) if args.only else STARTS:
        t0 = time.process_time()
        runs[bias] = {"rows": run(bias, x, x_test[: args.au_n], args.epochs, args.every, args.seed),
                      "cpu_seconds": time.process_time() - t0}
    # Read only now, so that the other start, trained at the same time in another process, is kept.
    path = RESULTS / "output_bias_start.json"
    settings = {"epochs": args.epochs, "au_n": args.au_n, "seed": args.seed}
    old = json.loads(path.read_text()) if path.is_file() else {}
    old = old if old.get("settings") == settings else {}
    merged = {**old.get("runs", {}), **runs}
    record = {"settings": settings, "runs": {b: merged[b] for b in STARTS if b in merged},
              "commands": {**old.get("commands", {}), **{b: command() for b in runs}}, "machine": machine()}
    lines = ["# Active units against the decoder's initial output bias (VAE k=1, Burda et al.'s model)", "",
             *[f"`{c}`  " for c in dict.fromkeys(record["commands"].values())], "",
             f"machine: {record['machine']}", "",
             f"Batch 100, lr 1e-3 (constant), Adam eps 1e-4, dynamic binarization, seed {args.seed}; active units "
             f"(Cov_x E_q[u] > 0.01, of 50) on the first {args.au_n} test images after the pass; ELBO: the training pass's mean.",
             "", "| pass | " + " | ".join(f"{b} bias: ELBO | active" for b in record["runs"]) + " |",
             "|---|" + "---|---|" * len(record["runs"])]
    by_epoch = {b: {r["epoch"]: r for r in v["rows"]} for b, v in record["runs"].items()}
    for e in sorted({e for rows in by_epoch.values() for e in rows}):
        cells = [(f"{rows[e]['train_elbo']:.2f} | {rows[e]['active_units']}" if e in rows else "– | –")
                 for rows in by_epoch.values()]
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    lines += ["", "CPU time: " + ", ".join(f"{b} {v['cpu_seconds'] / 60:.1f} min" for b, v in record["runs"].items()), ""]
    md = "\n".join(lines)
    print(md)
    write_results("output_bias_start", md, record)


if __name__ == "__main__":
    main()
