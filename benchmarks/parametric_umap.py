"""Reproduce the comparison of Sainburg, McInnes & Gentner 2021, "Parametric UMAP embeddings for
representation and semisupervised learning" (Neural Computation), with ``aekit.compare``.

Protocol (REFERENCES.md): MNIST and Fashion-MNIST, pixels in [0, 1], 50k train (the last 10k of the
training set held out as validation, unused here), 10k test; kNN classifiers fitted on the train
embeddings and scored on the test embeddings; trustworthiness with scikit-learn's defaults
(5 neighbours) on the first 10k training points; test reconstruction MSE where a method has an
inverse. Their AE/VAE are convolutional (Conv64-s2 -> Conv128-s2 -> Dense512 -> d, 50 / 30 epochs);
ours are chosen with ``--arch`` and ``--ae-epochs`` / ``--vae-epochs`` and printed with the results.

    nice -n 10 python benchmarks/parametric_umap.py --data-dir ../shared/data

Writes, per data set, parametric_umap_<data>.{md,csv,json}, parametric_umap_<data>_2d.png and
parametric_umap_<data>_run.json (command, machine, settings, times) to benchmarks/results/, and
parametric_umap.{md,json} (ours beside the published numbers) from every data set's record there,
so data sets can be run by separate invocations (``--datasets mnist``, then ``--datasets fashion-mnist``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aekit import compare  # noqa: E402
from aekit.data import load_dataset  # noqa: E402
from aekit.io import atomic_write_text  # noqa: E402

# Published MNIST numbers (REFERENCES.md, Sainburg et al. 2021): (dim, method) -> metric -> value.
PUBLISHED = {
    "mnist": {
        (2, "pca"): {"test_mse": .0557, "knn1": .3765, "knn5": .4201, "trustworthiness": .7434},
        (2, "ae"): {"test_mse": .0369, "knn1": .7647, "knn5": .7926, "trustworthiness": .9663},
        (2, "vae"): {"test_mse": .0371, "knn1": .7241, "knn5": .7649, "trustworthiness": .9513},
        (2, "umap"): {"test_mse": .0393, "knn1": .9317, "knn5": .9544},
        (2, "tsne"): {"knn1": .9411, "knn5": .9502, "trustworthiness": .9874},
        (64, "pca"): {"test_mse": .0090, "knn1": .9707, "trustworthiness": .9999},
        (64, "ae"): {"test_mse": .0016, "knn1": .9748, "trustworthiness": .9997},
        (64, "vae"): {"test_mse": .0024, "knn1": .9785, "trustworthiness": .9994},
        (64, "umap"): {"knn1": .9449},
    },
}
METRICS = (("test_mse", "test MSE"), ("knn1", "1-NN"), ("knn5", "5-NN"), ("trustworthiness", "trust"))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="mnist,fashion-mnist")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--methods", default="pca,umap,tsne,ae,vae")
    p.add_argument("--dims", default="2,64")
    p.add_argument("--arch", choices=["mlp", "conv"], default="mlp",
                   help="mlp: 784-512-256-d (mirrored decoder); conv: the paper's Conv64-s2 -> Conv128-s2 -> Dense512 -> d")
    p.add_argument("--hidden-dims", default="512,256", help="the MLP's hidden layers, input side first (decoder mirrored)")
    p.add_argument("--vae-likelihood", choices=["bernoulli", "gaussian"], default="bernoulli",
                   help="the VAE's decoder: Bernoulli on grey levels, or Gaussian with the fixed --vae-std")
    p.add_argument("--vae-std", type=float, default=0.05, help="the Gaussian decoder's standard deviation")
    p.add_argument("--ae-epochs", type=int, default=6)
    p.add_argument("--vae-epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--schedule", choices=["none", "cosine"], default="none",
                   help="the AE's and VAE's learning rate: constant, or cosine-annealed to 0 over their epochs")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam's learning rate (default 2e-3 for the MLP; 5e-4 for conv, where 2e-3 left the conv AE "
                        "stuck at the mean image with dead ReLUs after one epoch here)")
    p.add_argument("--trust-points", type=int, default=10000)
    p.add_argument("--tsne-max-points", type=int, default=3000)
    p.add_argument("--umap-dims", default="2", help="latent sizes UMAP runs at (minutes per fit and transform here)")
    p.add_argument("--umap-inverse", action="store_true",
                   help="also run umap-learn's inverse transform (its triangulation loop took over 4 minutes for 500 points here)")
    p.add_argument("--threads", type=int, default=1, help="torch, BLAS and OpenMP threads (1 avoids contention on a shared machine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    return p.parse_args(argv)


def method_options(args: argparse.Namespace) -> dict[str, dict]:
    if args.arch == "conv":
        net = {"hidden_dims": (512,), "model_options": {"architecture": "conv", "conv_channels": [64, 128]}}
    else:
        net = {"hidden_dims": tuple(int(h) for h in args.hidden_dims.split(","))}
    if args.lr is None:
        args.lr = 5e-4 if args.arch == "conv" else 2e-3
    common = {"batch_size": args.batch_size, "learning_rate": args.lr, "train_options": {"schedule": args.schedule}}
    methods = args.methods.split(",")
    # The AE is trained on squared error (a Gaussian decoder), the metric reported; the VAE on the
    # Bernoulli likelihood (cross-entropy on grey levels), the usual MNIST VAE, or on a Gaussian of
    # fixed small standard deviation, which weighs squared error 1/(2 std^2) against the KL.
    vae_decoder = ({"likelihood": "bernoulli"} if args.vae_likelihood == "bernoulli"
                   else {"likelihood": "gaussian", "decoder_std": args.vae_std})
    opts = {
        "ae": {**net, **common, "max_epochs": args.ae_epochs,
               "model_options": {**net.get("model_options", {}), "likelihood": "gaussian"}},
        "vae": {**net, **common, "max_epochs": args.vae_epochs,
                "model_options": {**net.get("model_options", {}), **vae_decoder}},
        "tsne": {"max_points": args.tsne_max_points},
        "umap": {"inverse": args.umap_inverse},
    }
    return {k: v for k, v in opts.items() if k in methods}


def fmt(v, published=None) -> str:
    ours = "–" if v is None else f"{v:.4f}"
    return ours if published is None else f"{ours} ({published:.4f})"


def side_by_side(name: str, rows: list[dict]) -> str:
    pub = PUBLISHED.get(name, {})
    head = ("| d | method | status | " + " | ".join(f"{label} ours (paper)" for _, label in METRICS)
            + " | fit s | transform s | note |\n|" + "---|" * (len(METRICS) + 6) + "\n")
    lines = []
    for r in rows:
        p = pub.get((r["dim"], r["method"]), {})
        cells = [fmt(r.get(k), p.get(k)) for k, _ in METRICS]
        times = ["–" if r.get(k) is None else f"{r[k]:.1f}" for k in ("fit_seconds", "transform_seconds")]
        lines.append(f"| {r['dim']} | {r['method']} | {r['status']} | " + " | ".join(cells + times)
                     + f" | {(r.get('note') or '').replace('|', '/')} |")
    return head + "\n".join(lines) + "\n"


def settings_lines(args: dict) -> str:
    hidden = args.get("hidden_dims", "512,256").replace(",", "-")
    vae_decoder = ("Bernoulli decoder" if args.get("vae_likelihood", "bernoulli") == "bernoulli"
                   else f"Gaussian decoder with fixed std {args['vae_std']}")
    arch = (f"MLP 784-{hidden}-d, mirrored decoder" if args["arch"] == "mlp"
            else "conv Conv64-s2 -> Conv128-s2 -> Dense512 -> d, mirrored")
    annealed = ", cosine-annealed to 0" if args.get("schedule", "none") == "cosine" else ""
    lines = {
        "ae": f"- AE: {arch}, ReLU, Gaussian decoder (squared error), Adam lr {args['lr']}{annealed}, batch {args['batch_size']}, "
              f"{args['ae_epochs']} epochs (paper: conv, 50 epochs, batch 256)\n",
        "vae": f"- VAE: same network, {vae_decoder}, posterior mean as the embedding, {args['vae_epochs']} epochs "
               f"(paper: conv, 30 epochs, batch 128)\n",
        "tsne": f"- t-SNE: Barnes-Hut on a {args['tsne_max_points']}-point subsample of train+test embedded together (the paper: all 60k)\n",
        "umap": f"- UMAP: umap-learn defaults (15 neighbours, min_dist 0.1), seeded (so single-threaded), at d in "
                f"{{{args['umap_dims']}}}; inverse transform {'on the first 1000 test points' if args['umap_inverse'] else 'not run'}\n",
    }
    methods = args.get("methods", ",".join(lines)).split(",")  # only the methods this run had
    return "".join(text for name, text in lines.items() if name in methods)


def write_summary(out: Path, names: list[str]) -> Path:
    """parametric_umap.md/.json from the per-data-set records present in ``out`` (each run adds its own)."""
    records = {n: json.loads((out / f"parametric_umap_{n}_run.json").read_text())
               for n in names if (out / f"parametric_umap_{n}_run.json").is_file()}
    parts = ["# Parametric UMAP comparison (Sainburg, McInnes & Gentner 2021)\n\n"
             "Cells read `ours (paper)`; published numbers (REFERENCES.md) are for MNIST only. Times are wall-clock "
             "seconds on a shared machine (see each section's load average and CPU time).\n"]
    for n, r in records.items():
        info = r["info"]
        published_note = "" if n in PUBLISHED else " Published numbers for this data set are not transcribed in REFERENCES.md."
        parts.append(
            f"\n## {n}\n\n- command: `{r['command']}`\n- machine: {r['machine']}\n"
            f"- time: {r['seconds']:.0f} s wall, {r['cpu_seconds']:.0f} s CPU of this process\n{settings_lines(r['settings'])}"
            f"- {info['n_train']} train / {info['n_test']} test; trustworthiness on the first "
            f"{info['trustworthiness_points']} training points.{published_note}\n\n"
            f"{side_by_side(n, r['rows'])}\n![2-D embeddings](parametric_umap_{n}_2d.png)\n")
    atomic_write_text(out / "parametric_umap.md", "".join(parts))
    atomic_write_text(out / "parametric_umap.json", json.dumps(records, indent=2, default=str) + "\n")
    return out / "parametric_umap.md"


def main(argv: list[str] | None = None) -> int:
    from threadpoolctl import threadpool_limits

    args = parse(argv)
    torch.set_num_threads(args.threads)
    # BLAS and OpenMP pools too (kNN, PCA, t-SNE): spinning threads on a shared 2-core machine cost more than they give.
    threadpool_limits(args.threads)
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *(argv if argv is not None else sys.argv[1:])])
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared; load average "
               f"{os.getloadavg()[0]:.1f} at start), torch {torch.__version__} with {args.threads} thread(s), Python {platform.python_version()}")
    print(f"command: {command}\nmachine: {machine}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = args.methods.split(",")
    for name in args.datasets.split(","):
        data = load_dataset(name, data_dir=args.data_dir)  # 50k train / last 10k as validation / 10k test
        print(f"\n== {name}: {data} ==", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        res = compare(data, methods=methods, dims=[int(d) for d in args.dims.split(",")],
                      method_options=method_options(args), seed=args.seed, trust_points=args.trust_points,
                      method_dims={"umap": [int(d) for d in args.umap_dims.split(",")]} if "umap" in methods else None)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        res.save(out, f"parametric_umap_{name}")
        record = {"command": command, "machine": machine, "settings": vars(args), "seconds": seconds, "cpu_seconds": cpu,
                  "info": res.info, "rows": json.loads(res.to_json())["rows"],
                  "published": {f"{d}/{m}": v for (d, m), v in PUBLISHED.get(name, {}).items()}}
        atomic_write_text(out / f"parametric_umap_{name}_run.json", json.dumps(record, indent=2, default=str) + "\n")
        print(side_by_side(name, res.rows), flush=True)
        print(f"{name}: {seconds:.0f} s wall, {cpu:.0f} s CPU", flush=True)
        summary = write_summary(out, ["mnist", "fashion-mnist", *args.datasets.split(",")])
    print(f"\nwrote {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
