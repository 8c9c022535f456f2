"""MNIST classification by fine-tuned autoencoder stacks, with and without greedy pretraining.

Vincent et al. 2010 (JMLR 11), 3 hidden layers: SAE-3 1.40%, SDAE-3 (masking nu = 25%) 1.28%.
Rifai et al. 2011 (ICML), one 1000-unit layer pretrained then fine-tuned: CAE 1.14%, DAE (Gaussian)
1.18%, DAE (masking) 1.57%, AE 1.78%.

MNIST in [0, 1], 50k train / 10k validation (the last 10k training images) / 10k test. Each run:
greedy layer-wise pretraining (``StackedAE.pretrain``, one tied-weight sigmoid autoencoder per layer,
cross-entropy, Adam) unless the run is a "no pretraining" baseline, then fine-tuning of the whole
stack and its softmax head (``aekit.train.fit`` on the labels). The reported test error is the one
at the epoch of lowest validation error; the test error after every epoch, with the wall-clock time
since the run started (pretraining included), is the time-to-accuracy curve.

The papers train far longer (many pretraining and fine-tuning epochs, with layer sizes, learning
rates and noise levels chosen on the validation set); this script's short schedule is its
``--pretrain-epochs`` / ``--epochs`` and is written into the results. Runs can be done in separate
invocations (``--runs``); results/stacked_mnist.json collects them.

    nice -n 10 python benchmarks/stacked_mnist.py --runs none-3 sae-3 sdae-3
    nice -n 10 python benchmarks/stacked_mnist.py --runs ae-1 dae-1 cae-1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import _regbench as rb  # noqa: E402
from aekit import registry  # noqa: E402
from aekit.config import TrainConfig  # noqa: E402
from aekit.train import fit  # noqa: E402

# name -> (registry name, config options given the layer sizes, pretrain?, published error %, source)
RUNS = {
    "none-3": ("stacked_ae", {}, False, None, "3 layers, no pretraining (the baseline; no published number listed)"),
    "sae-3": ("stacked_ae", {}, True, 1.40, "SAE-3, Vincent et al. 2010"),
    "sdae-3": ("stacked_dae", {"corruption_level": 0.25}, True, 1.28, "SDAE-3, masking 25%, Vincent et al. 2010"),
    "ae-1": ("stacked_ae", {}, True, 1.78, "AE, one 1000-unit layer, Rifai et al. 2011"),
    "dae-1": ("stacked_dae", {"corruption": "gaussian", "corruption_level": 0.3}, True, 1.18, "DAE (Gaussian; sigma = 0.3 here), Rifai et al. 2011"),
    "dae-mask-1": ("stacked_dae", {"corruption_level": 0.25}, True, 1.57, "DAE (masking; nu = 25% here), Rifai et al. 2011"),
    "cae-1": ("stacked_ae", {"contractive_weight": 0.1}, True, 1.14, "CAE (lambda = 0.1 here), Rifai et al. 2011"),
    "none-1": ("stacked_ae", {}, False, None, "one 1000-unit layer, no pretraining"),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", default=["none-3", "sae-3", "sdae-3"], choices=sorted(RUNS))
    p.add_argument("--deep-sizes", type=int, nargs=3, default=[500, 500, 500], help="layer sizes of the 3-layer stacks")
    p.add_argument("--wide-size", type=int, default=1000, help="size of the one-layer stacks (Rifai et al.: 1000)")
    p.add_argument("--pretrain-epochs", type=int, default=5, help="epochs per layer")
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=40, help="fine-tuning epochs")
    p.add_argument("--schedule", default="cosine", help="fine-tuning learning-rate schedule")
    p.add_argument("--lr", type=float, default=1e-3, help="fine-tuning learning rate (Adam)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rewrite", action="store_true", help="only rewrite the Markdown and the curves from the saved JSON")
    args = p.parse_args()
    path = rb.RESULTS / "stacked_mnist.json"
    if args.rewrite:
        write(json.loads(path.read_text()))
        return
    info = rb.machine(args.threads)
    rb.header("Fine-tuned autoencoder stacks on MNIST", info)
    data = rb.load("mnist")
    x, y = data.train.x.reshape(-1, 784), data.train.y
    xv, yv = data.val.x.reshape(-1, 784), data.val.y
    xt, yt = data.test.x.reshape(-1, 784), data.test.y
    saved = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    for name in args.runs:
        model_name, options, pretrain, published, source = RUNS[name]
        sizes = args.deep_sizes if name.endswith("-3") else [args.wide_size]
        options = {"input_shape": [784], "hidden_dims": sizes[:-1], "latent_dim": sizes[-1], "num_classes": 10, **options}
        torch.manual_seed(args.seed)
        model = registry.build(model_name, options)
        start = time.perf_counter()
        pre_seconds = 0.0
        if pretrain:
            ptc = TrainConfig(epochs=args.pretrain_epochs, batch_size=args.batch_size, lr=args.pretrain_lr,
                              seed=args.seed, progress=False)
            model.pretrain(x, config=ptc, on_epoch_end=lambda k, row: print(
                f"{name} pretrain layer {k + 1} epoch {int(row['epoch'])}: loss {row['train_loss']:.3f} "
                f"({time.perf_counter() - start:.0f}s)", flush=True))
            pre_seconds = time.perf_counter() - start
        curve = []

        def on_epoch(row, model=model, curve=curve, start=start, name=name):
            test_error = float((model.predict(xt) != yt).float().mean())
            curve.append({"epoch": int(row["epoch"]), "seconds": round(time.perf_counter() - start, 1),
                          "val_error": row["val_error"], "test_error": test_error})
            print(f"{name} fine-tune epoch {int(row['epoch'])}: val error {100 * row['val_error']:.2f}% "
                  f"test error {100 * test_error:.2f}% ({curve[-1]['seconds']:.0f}s)", flush=True)

        tc = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule=args.schedule,
                         seed=args.seed, progress=False)
        result = fit(model, x, y, config=tc, val_x=xv, val_y=yv, on_epoch_end=on_epoch)
        best = min(curve, key=lambda c: c["val_error"])
        params = sum(q.numel() for q in model.parameters()) - sum(q.numel() for q in model.decoders.parameters())
        saved["runs"][name] = {
            "command": rb.command(), "machine": info, "model": model_name, "options": options, "source": source,
            "pretrained": pretrain, "pretrain_epochs_per_layer": args.pretrain_epochs if pretrain else 0,
            "pretrain_lr": args.pretrain_lr, "finetune_epochs": args.epochs, "finetune_lr": args.lr, "finetune_schedule": args.schedule,
            "batch_size": args.batch_size, "optimizer": "adam", "seed": args.seed,
            "published_test_error_pct": published, "test_error_pct": 100 * best["test_error"], "best_epoch": best["epoch"],
            "final_test_error_pct": 100 * curve[-1]["test_error"],
            "pretrain_seconds": pre_seconds, "finetune_seconds": result.seconds, "total_seconds": time.perf_counter() - start,
            "finetune_epoch_flop_floor_seconds": rb.mlp_epoch_floor(params, x.shape[0], info["gemm_gflops"]),
            "curve": curve,
        }
        write(saved)


def write(saved: dict) -> None:
    order = [n for n in RUNS if n in saved["runs"]]
    for n in order:
        saved["runs"][n]["source"] = RUNS[n][4]          # the description as this script states it now
    rows = []
    for n in order:
        r = saved["runs"][n]
        layers = r["options"]["hidden_dims"] + [r["options"]["latent_dim"]]
        sched = (f"{r['pretrain_epochs_per_layer']} ep/layer + " if r["pretrained"] else "") + f"{r['finetune_epochs']} ep"
        rows.append([n, r["source"], "x".join(map(str, layers)), sched, r["published_test_error_pct"],
                     round(r["test_error_pct"], 2), round(r["final_test_error_pct"], 2),
                     f"{r['pretrain_seconds']:.0f} s + {r['finetune_seconds']:.0f} s",
                     f"{r['finetune_seconds'] / r['finetune_epochs']:.1f} s ({r['finetune_epoch_flop_floor_seconds']:.1f} s)"])
    first = saved["runs"][order[0]]
    md = ["# Fine-tuned autoencoder stacks on MNIST (test error %)", "",
          "MNIST [0, 1], 50k train / 10k validation (last 10k of the training set) / 10k test. Sigmoid layers, "
          "tied-weight layer autoencoders with cross-entropy, Adam (pretraining: constant learning rate; fine-tuning: "
          "cosine decay; see each run's settings in the JSON); the test error is taken at the epoch of lowest "
          "validation error. Each run's command, machine and settings are in stacked_mnist.json.", "",
          f"Machine (first run): {first['machine']['cpu']}, {first['machine']['cores']} cores shared with other jobs, "
          f"{first['machine']['torch_threads']} torch thread(s), torch {first['machine']['torch']}.", "",
          "**Short schedule.** The papers pretrain and fine-tune for many more epochs and tune layer sizes, learning "
          "rates and noise levels on the validation set; these runs use the few epochs listed, so their errors are "
          "those of a short schedule, not a reproduction of the published ones.", "",
          rb.table(rows, ["run", "setting", "layers", "schedule (pretrain + fine-tune)", "published", "ours",
                          "ours, last epoch", "time (pretrain + fine-tune)", "fine-tune s/epoch incl. scoring (FLOP floor)"]),
          "", "Time-to-accuracy (seconds since the run started, pretraining included: test error %):", ""]
    for n in order:
        md.append(f"- {n}: " + ", ".join(f"{c['seconds']:.0f} s: {100 * c['test_error']:.2f}" for c in saved["runs"][n]["curve"]))
    md.append("\nCurves: stacked_mnist_curves.png.")
    text = "\n".join(md)
    print(text)
    rb.write("stacked_mnist", saved, text)
    plot_curves(saved, order)


def plot_curves(saved: dict, order: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for n in order:
        c = saved["runs"][n]["curve"]
        ax.plot([p["seconds"] for p in c], [100 * p["test_error"] for p in c], marker=".", label=n)
    ax.set_xlabel("seconds since the run started (pretraining included)")
    ax.set_ylabel("MNIST test error (%)")
    ax.set_ylim(0, 5)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(rb.RESULTS / "stacked_mnist_curves.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
