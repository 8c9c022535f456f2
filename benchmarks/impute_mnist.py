"""Imputing hidden pixels of binarized MNIST test digits with a trained VAE.

The model is one this repository trains for Burda et al.'s Table 1 (``iwae_mnist.py``: 784-200-200-50
tanh, Bernoulli decoder, on dynamically binarized MNIST). The first ``--n`` test images, binarized
once with seed 0 as in that script, have part of each image hidden (a centred square of a quarter of
the image, the bottom half, or half the pixels at random). Each method fills them in:

- self-normalized importance sampling (Mattei & Frellsen 2019), ``--samples`` draws from q, and
  Metropolis-within-Gibbs (Mattei & Frellsen 2018), ``--steps`` steps: both reach the model's exact
  conditional p(x_hidden | x_observed) in the limit;
- pseudo-Gibbs (Rezende et al. 2014), the same chain accepting every proposal;
- iterated reconstruction at the posterior mean;
- without the model: the training mean of each pixel, and scikit-learn's KNNImputer (5 neighbours
  among ``--knn-train`` binarized training images).

Scores on the hidden pixels only: the squared error of the imputed probabilities (the Brier score),
the error rate of those thresholded at 1/2, and the error rate of one draw from the chain. There is
no published number for this exact setting; the comparison is between methods on the same model.

    nice -n 10 python benchmarks/impute_mnist.py --model runs/iwae_mnist/vae1_dynamic_1500
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import command, data_dir, machine, write_results  # noqa: E402

from aekit import from_pretrained  # noqa: E402
from aekit.cli.denoise import write_grid  # noqa: E402
from aekit.data import load_dataset  # noqa: E402
from aekit.evaluate.impute import impute, missing_mask  # noqa: E402

PATTERNS = (("square", 0.25), ("bottom", 0.5), ("random", 0.5))


def scores(filled: torch.Tensor, truth: torch.Tensor, hidden: torch.Tensor, draw: torch.Tensor | None = None) -> dict:
    p, t = filled[hidden], truth[hidden]
    out = {"brier": float(((p - t) ** 2).mean()), "error_rate": float(((p > 0.5).to(t.dtype) != t).float().mean())}
    if draw is not None:
        out["draw_error_rate"] = float((draw[hidden] != t).float().mean())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a saved model folder (e.g. runs/iwae_mnist/<tag>)")
    p.add_argument("--n", type=int, default=1000, help="test images")
    p.add_argument("--steps", type=int, default=500, help="chain steps (Metropolis, pseudo-Gibbs, iteration)")
    p.add_argument("--samples", type=int, default=1000, help="importance samples")
    p.add_argument("--knn-train", type=int, default=10000, help="training images KNNImputer searches (0: skip it)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir")
    p.add_argument("--tag", default="mnist")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"$ {command()}\nmachine: {machine()}", flush=True)
    model = from_pretrained(args.model)
    d = load_dataset("mnist", data_dir=data_dir(args.data_dir), validation=0)
    truth = torch.bernoulli(d.test.x.reshape(-1, 784), generator=torch.Generator().manual_seed(0))[: args.n]
    train = d.train.x.reshape(-1, 784)
    train_mean = train.mean(0)
    knn_rows = torch.bernoulli(train[: args.knn_train], generator=torch.Generator().manual_seed(1)).numpy()
    rows, pictures = [], {}
    for pattern, fraction in PATTERNS:
        observed = missing_mask((args.n, 1, 28, 28), pattern, fraction, generator=torch.Generator().manual_seed(0))
        observed = observed.reshape(args.n, 784)
        hidden = ~observed
        results = {}
        for method in ("importance", "metropolis", "pseudo_gibbs", "iterate"):
            t0 = time.perf_counter()
            r = impute(model, truth, observed, method=method, steps=args.samples if method == "importance" else args.steps,
                       fill=train_mean, generator=torch.Generator().manual_seed(0))
            seconds = time.perf_counter() - t0
            results[method] = r
            rows.append({"pattern": pattern, "fraction": fraction, "method": method, "seconds": seconds,
                         "acceptance": r.acceptance, "effective_samples": r.effective_samples,
                         **scores(r.mean, truth, hidden, None if method == "iterate" else r.sample)})
        rows.append({"pattern": pattern, "fraction": fraction, "method": "training mean", "seconds": 0.0,
                     "acceptance": None, "effective_samples": None,
                     **scores(torch.where(observed, truth, train_mean), truth, hidden)})
        if args.knn_train:
            from sklearn.impute import KNNImputer

            t0 = time.perf_counter()
            holes = truth.numpy().copy()
            holes[hidden.numpy()] = np.nan
            filled = KNNImputer(n_neighbors=5).fit(knn_rows).transform(holes)
            rows.append({"pattern": pattern, "fraction": fraction, "method": f"KNNImputer (5 of {args.knn_train})",
                         "seconds": time.perf_counter() - t0, "acceptance": None, "effective_samples": None,
                         **scores(torch.from_numpy(filled).float(), truth, hidden)})
        for r in rows[-(5 + bool(args.knn_train)):]:
            print(f"{pattern:7s} {r['method']:24s} brier {r['brier']:.4f}  error {r['error_rate']:.4f}  "
                  f"draw {r.get('draw_error_rate', float('nan')):.4f}  {r['seconds']:.1f}s", flush=True)
        k = 16
        shown = [torch.where(observed, truth, torch.full_like(truth, 0.5))[:k], results["importance"].mean[:k],
                 results["importance"].sample[:k], truth[:k]]
        pictures[pattern] = write_grid(Path(__file__).resolve().parent / "results" / f"impute_{args.tag}_{pattern}.png",
                                       (1, 28, 28), *shown,
                                       title=f"{pattern}: observed | importance-sampled mean | one draw | original")
    table = "\n".join(
        f"| {r['pattern']} ({100 * r['fraction']:.0f}%) | {r['method']} | {r['brier']:.4f} | {r['error_rate']:.4f} | "
        f"{'' if 'draw_error_rate' not in r else format(r['draw_error_rate'], '.4f')} | "
        f"{'' if r['acceptance'] is None else format(r['acceptance'], '.2f')} | "
        f"{'' if r['effective_samples'] is None else format(r['effective_samples'], '.1f')} | {r['seconds']:.1f} s |"
        for r in rows)
    md = (f"# Imputing hidden pixels of binarized MNIST\n\n`{command()}`\n\nmachine: {machine()}\n\n"
          f"Model: `{args.model}` ({type(model).__name__}, {model.config.to_dict().get('objective', '')} "
          f"k={model.config.to_dict().get('k', '')}). The first {args.n} test images, binarized with seed 0; "
          f"{args.samples} importance samples; {args.steps} chain steps, the conditional mean over the second half "
          "(Metropolis: the first quarter pseudo-Gibbs; importance sampling proposes from q(z | the mean of 20 pseudo-Gibbs steps)). Scores on the hidden pixels: "
          "the squared error of the imputed probabilities (Brier), the error rate of those thresholded at 1/2, and "
          "of one draw. No published number is set beside these.\n\n"
          "| hidden | method | Brier | error rate | one draw's error rate | acceptance | effective samples | time |\n"
          "|---|---|---|---|---|---|---|---|\n"
          f"{table}\n\nPictures: {', '.join(f'`{p.name}`' for p in pictures.values())}.\n")
    print(md)
    write_results(f"impute_{args.tag}", md, {"command": command(), "machine": machine(), "model": args.model,
                                              "n": args.n, "steps": args.steps, "samples": args.samples, "rows": rows})


if __name__ == "__main__":
    main()
