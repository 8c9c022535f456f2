"""Burda, Grosse & Salakhutdinov 2015, Table 1 (one stochastic layer): test NLL on binarized MNIST.

One run trains one model — the VAE or IWAE objective with k samples — with the paper's architecture
(784-200-200-50, tanh, Bernoulli decoder, Glorot init) and optimizer (Adam, beta 0.9/0.999,
eps 1e-4), then reports the test NLL as the mean k = 5000 importance-sampled bound of the whole
test set, the ELBO, the active units and the wall-clock times, beside the published numbers.

The paper trains 3280 passes with batch 20: 3^i passes at learning rate 1e-3 * 10^(-i/7), i = 0..7.
Here the same learning-rate range (1e-3 down to 1e-4) is compressed into ``--epochs`` passes with
an exponential decay per epoch and batch 100, so that one run fits a 2-core machine; the results
state the schedule used. Dynamic binarization resamples every training batch; the test set is
binarized once (seed 0). ``--binarization static`` uses Larochelle's fixed binarization (train on
its 50k + 10k validation images, test on its 10k).

Every run writes benchmarks/results/iwae_mnist_<tag>.{md,json}; iwae_mnist.{md,json} collect all
runs present. Examples:

    nice -n 10 python benchmarks/iwae_mnist.py --objective vae --k 1 --epochs 40
    nice -n 10 python benchmarks/iwae_mnist.py --objective iwae --k 5 --epochs 20
    # a long schedule that survives interruptions, then IWAE fine-tuning from its weights
    python benchmarks/iwae_mnist.py --objective vae --k 1 --epochs 1000 --run-dir runs/long/vae1
    python benchmarks/iwae_mnist.py --objective iwae --k 50 --epochs 10 --init runs/long/vae1
    # continue a saved model (the results file that names it supplies its schedule and time)
    python benchmarks/iwae_mnist.py --objective iwae --k 5 --epochs 300 --lr 1e-4 --lr-final 1e-5 \
        --init runs/iwae_mnist/iwae5_dynamic_1406 --tag iwae5_dynamic_1706
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import RESULTS, command, data_dir, machine, write_results  # noqa: E402

from aekit.config import TrainConfig  # noqa: E402
from aekit.data import Preprocessing, load_dataset  # noqa: E402
from aekit.evaluate.latent import active_units  # noqa: E402
from aekit.evaluate.likelihood import DEFAULT_CHUNK, density_report  # noqa: E402
from aekit.models.iwae import IWAE, IWAEConfig  # noqa: E402
from aekit.train import fit  # noqa: E402

# Table 1 and the appendix (static binarization), one stochastic layer: test NLL in nats.
PUBLISHED = {
    ("dynamic", "vae", 1): 86.76, ("dynamic", "vae", 5): 86.47, ("dynamic", "vae", 50): 86.35,
    ("dynamic", "iwae", 1): 86.76, ("dynamic", "iwae", 5): 85.54, ("dynamic", "iwae", 50): 84.78,
    ("static", "vae", 1): 88.71, ("static", "vae", 5): 88.83, ("static", "vae", 50): 89.05,
    ("static", "iwae", 1): 88.71, ("static", "iwae", 5): 87.63, ("static", "iwae", 50): 87.10,
}
PUBLISHED_ACTIVE = {("dynamic", "vae", 1): 19, ("dynamic", "iwae", 50): 25}
PAPER_SCHEDULE = "3280 passes, batch 20 (about 9.8M steps): 3^i passes at lr 1e-3*10^(-i/7), i = 0..7"


def load(binarization: str, data: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Training images (N, 784) in [0, 1] (dynamic) or {0, 1} (static), and the binary test set."""
    if binarization == "static":
        d = load_dataset("binarized-mnist", data_dir=data)
        train = torch.cat([d.train.x, d.val.x]) if d.val is not None else d.train.x
        return train.reshape(train.shape[0], -1), d.test.x.reshape(d.test.x.shape[0], -1)
    d = load_dataset("mnist", data_dir=data, validation=0)
    test = torch.bernoulli(d.test.x.reshape(-1, 784), generator=torch.Generator().manual_seed(0))
    return d.train.x.reshape(-1, 784), test


def initialise(model: IWAE, path: Path) -> tuple[float, float | None, str]:
    """Load the last weights of an earlier run into ``model``: a ``--run-dir`` folder, or a model
    folder this script saved (``runs/iwae_mnist/<tag>``). Returns its wall and CPU training seconds
    (None when unknown) and a schedule prefix: for a run folder from its metrics.csv (CPU time from
    ``iwae_mnist_<folder name>.json`` when that exists), for a saved model from the results file
    that names it, so that chains of continuations keep the whole history of their passes."""
    from aekit import from_pretrained
    from aekit.errors import AekitError
    from aekit.train import LAST, read_metrics

    if (path / LAST).is_dir():
        earlier = from_pretrained(path / LAST)
        rows = read_metrics(path / "metrics.csv")
        c = earlier.config
        what = "VAE" if c.objective == "vae" else f"IWAE k={c.k}"
        record = RESULTS / f"iwae_mnist_{path.name}.json"
        cpu = json.loads(record.read_text()).get("train_cpu_seconds") if record.is_file() else None
        model.load_state_dict(earlier.state_dict())
        return sum(r["seconds"] for r in rows), cpu, f"{len(rows)} passes of the {what} objective ({path.name}), then "
    try:
        earlier = from_pretrained(path)
    except AekitError as e:
        raise SystemExit(f"--init {path}: {e}") from None
    records = [json.loads(f.read_text()) for f in sorted(RESULTS.glob("iwae_mnist_*.json"))]
    record = next((r for r in records if "model_dir" in r and Path(r["model_dir"]).resolve() == path.resolve()), None)
    if record is None:
        raise SystemExit(f"--init {path}: no results file in {RESULTS} names this model, so its training "
                         "schedule and time are unknown; pass the run folder (--run-dir) it was trained in.")
    model.load_state_dict(earlier.state_dict())
    return (record["train_seconds"], record.get("train_cpu_seconds"),
            f"[{record['schedule']} ({record['tag']}, test NLL {record['test_nll']:.2f})], then ")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objective", choices=["vae", "iwae"], default="iwae")
    p.add_argument("--k", type=int, default=5, help="samples per input in the training objective")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-final", type=float, default=1e-4, help="learning rate of the last epoch (exponential decay)")
    p.add_argument("--schedule", choices=["exponential", "burda"], default="exponential",
                   help="exponential: lr to --lr-final over the passes; burda: the paper's stages, 3^i passes at "
                        "lr * 10^(-i/7) for i = 0..7 (3280 passes), stretched or shrunk to --epochs")
    p.add_argument("--binarization", choices=["dynamic", "static"], default="dynamic")
    p.add_argument("--output-bias", choices=["data", "zero"], default="data",
                   help="the decoder's initial output bias: the logit of the training data's mean (the paper's "
                        "code; runs before 2026-11-22 used zero) or zero; a model from --init keeps its own")
    p.add_argument("--eval-k", type=int, default=5000)
    p.add_argument("--eval-n", type=int, default=0, help="test images to evaluate (0: all)")
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK, help="(sample, image) pairs per evaluation pass")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a shared 2-core machine a second thread that is "
                        "descheduled stalls every parallel region)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir")
    p.add_argument("--save", help="folder to save the trained model in (default runs/iwae_mnist/<tag>)")
    p.add_argument("--tag", help="name of this run's result files (default <objective><k>_<binarization>)")
    p.add_argument("--init", metavar="DIR",
                   help="start from the last weights of an earlier --run-dir run (e.g. a VAE run before an IWAE "
                        "fine-tune) or from a model this script saved (runs/iwae_mnist/<tag>); its passes and "
                        "wall time are counted in this run's schedule and time")
    p.add_argument("--run-dir", help="train with checkpoints here (every pass) and continue from them when "
                                     "the folder already holds this run: long schedules can span several sittings")
    args = p.parse_args()

    tag = args.tag or f"{args.objective}{args.k}_{args.binarization}"
    torch.set_num_threads(args.threads)
    print(f"$ {command()}\nmachine: {machine()}", flush=True)
    x, x_test = load(args.binarization, data_dir(args.data_dir))
    if args.eval_n:
        x_test = x_test[: args.eval_n]
    torch.manual_seed(args.seed)
    model = IWAE(IWAEConfig(input_shape=(784,), k=args.k, objective=args.objective, output_bias=args.output_bias))
    # Recorded so that `aekit evaluate` on the saved model flattens and binarizes the test set as here.
    model.preprocessing = Preprocessing(input_shape=(1, 28, 28), flatten=True,
                                        binarize="dynamic" if args.binarization == "dynamic" else "none")
    init_s, init_cpu, init_text = 0.0, 0.0, ""   # init_cpu: None when the earlier run's CPU time is unknown
    if args.init:
        init_s, init_cpu, init_text = initialise(model, Path(args.init))
    if args.schedule == "burda":
        # Stage i ends after 3^0 + ... + 3^i passes (1, 4, 13, ..., 3280); the lr drops by 10^(-1/7) at each end.
        ends = [(3 ** (i + 1) - 1) // 2 for i in range(7)]
        milestones = tuple(max(1, round(e * args.epochs / 3280)) for e in ends)  # repeats drop the lr repeatedly
        sched = {"schedule": "multistep", "milestones": milestones, "gamma": 10 ** (-1 / 7)}
        lr_text = f"lr {args.lr:g} times 10^(-1/7) after passes {', '.join(map(str, milestones))} (the paper's stages scaled to {args.epochs} passes)"
    else:
        gamma = (args.lr_final / args.lr) ** (1.0 / max(1, args.epochs - 1))
        sched = {"schedule": "exponential", "gamma": gamma}
        lr_text = f"lr {args.lr:g} decayed by {gamma:.4f} per pass to {args.lr_final:g}"
    tc = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer="adam", betas=(0.9, 0.999),
                     eps=1e-4, seed=args.seed, progress=False, **sched)
    bias_text = "" if args.init else f"decoder bias {'from the data mean' if args.output_bias == 'data' else 'zero'} at the start; "
    schedule = (f"{init_text}{bias_text}{args.epochs} passes, batch {args.batch_size} ({args.epochs * math.ceil(x.shape[0] / args.batch_size):,} steps), "
                f"Adam eps 1e-4, {lr_text}")
    print(f"{tag}: {schedule}", flush=True)

    def report(row: dict[str, float]) -> None:
        print(f"epoch {int(row['epoch'])}: loss {row['train_loss']:.2f}  elbo {row['train_elbo']:.2f}  "
              f"lr {row['lr']:.2e}  ({row['seconds']:.1f}s)", flush=True)

    t0, c0 = time.perf_counter(), time.process_time()
    run_dir = Path(args.run_dir) if args.run_dir else None
    resume = run_dir is not None and (run_dir / "metrics.csv").exists()
    if resume:
        print(f"continuing the run in {run_dir}", flush=True)
    result = fit(model, x, config=tc, binarize=args.binarization == "dynamic", on_epoch_end=report,
                 run_dir=run_dir, resume=resume)
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    if resume:  # the times of every sitting, from the per-pass times the run folder kept
        train_s = sum(r["seconds"] for r in result.history)
        # Runs begun before the trainer recorded CPU time per pass: the earlier sittings' is unknown.
        train_cpu = sum(r["cpu_seconds"] for r in result.history) if all("cpu_seconds" in r for r in result.history) else None
    train_s, own_cpu = train_s + init_s, train_cpu   # own_cpu: this run's passes only
    train_cpu = None if train_cpu is None or init_cpu is None else train_cpu + init_cpu
    load_train = os.getloadavg()[1]
    save = Path(args.save) if args.save else Path(__file__).resolve().parents[1] / "runs" / "iwae_mnist" / tag
    model.save_pretrained(save)

    t0, c0 = time.perf_counter(), time.process_time()
    dens = density_report(model, x_test, k=args.eval_k, chunk_size=args.chunk_size, seed=0)
    eval_s, eval_cpu = time.perf_counter() - t0, time.process_time() - c0
    au = active_units(model, x_test)
    nll = dens["nll"]
    published = PUBLISHED.get((args.binarization, args.objective, args.k))
    row = {
        "tag": tag, "objective": args.objective, "k": args.k, "binarization": args.binarization,
        "test_nll": nll, "published_nll": published, "gap_nats": None if published is None else nll - published,
        "test_elbo": dens["elbo"], "test_kl": dens["kl"], "eval_k": args.eval_k, "n_test": int(x_test.shape[0]),
        "chunk_size": args.chunk_size,
        "active_units": au.count, "published_active_units": PUBLISHED_ACTIVE.get((args.binarization, args.objective, args.k)),
        "train_seconds": train_s, "eval_seconds": eval_s, "loglik_seconds": dens.get("log_likelihood_seconds"),
        "train_cpu_seconds": train_cpu, "own_train_cpu_seconds": own_cpu, "eval_cpu_seconds": eval_cpu,
        "load_average": {"train_last_5min": load_train, "eval_last_5min": os.getloadavg()[1]},
        "schedule": schedule, "paper_schedule": PAPER_SCHEDULE, "final_train_elbo": result.history[-1]["train_elbo"],
        "command": command(), "machine": machine(), "model_dir": str(save),
        "history": [{k: r[k] for k in ("epoch", "train_loss", "train_elbo", "lr", "seconds")} for r in result.history],
    }
    pub = "-" if published is None else f"{published:.2f}"
    md = (f"# Burda et al. 2015, Table 1 — {args.objective.upper()} k={args.k}, {args.binarization} binarization\n\n"
          f"`{row['command']}`\n\nmachine: {row['machine']}\n\n"
          f"| model | test NLL (k={args.eval_k}, {row['n_test']} images) | published | test ELBO | active units | train time | eval time |\n"
          f"|---|---|---|---|---|---|---|\n"
          f"| {args.objective.upper()} k={args.k} | {nll:.2f} | {pub} | {dens['elbo']:.2f} | {au.count} | "
          f"{train_s / 60:.1f} min | {eval_s / 60:.1f} min |\n\n"
          f"Our schedule: {schedule}. The paper's: {PAPER_SCHEDULE}.\n\n"
          f"CPU time: training {cpu_text(train_cpu, own_cpu, args.epochs)}, "
          f"evaluation {eval_cpu / 60:.1f} min "
          f"(1 thread; the machine's 5-minute load average was {load_train:.1f} at the end of training, "
          f"{row['load_average']['eval_last_5min']:.1f} at the end of evaluation, so wall times include waiting for the CPU).\n")
    print(md, flush=True)
    write_results(f"iwae_mnist_{tag}", md, row)
    collect()


def cpu_text(total: float | None, own: float | None, passes: int) -> str:
    if total is not None:
        return f"{total / 60:.1f} min"
    if own is not None:
        return f"{own / 60:.1f} min for this run's {passes} passes (the earlier runs it continues did not record theirs)"
    return "not recorded (the run spanned several sittings and began before per-pass CPU times were kept)"


def collect() -> None:
    """Rebuild iwae_mnist.{md,json} from every per-run result present."""
    rows = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("iwae_mnist_*.json"))]
    rows.sort(key=lambda r: (r["binarization"], r["objective"], r["k"], r["tag"]))
    lines = ["# Burda et al. 2015, Table 1 (one stochastic layer): ours beside the published test NLL\n",
             "Test NLL in nats = minus the mean k-sample importance-weighted bound of the test images "
             "(lower is better). Each row is one run of `benchmarks/iwae_mnist.py` on the machine named "
             "in its own file; times are wall-clock on that machine.\n",
             f"The paper's schedule: {PAPER_SCHEDULE}.\n",
             "| binarization | model | ours | published | gap | test ELBO | active units (published) | schedule | train wall (CPU) | eval wall (CPU), k |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pub = "-" if r["published_nll"] is None else f"{r['published_nll']:.2f}"
        gap = "-" if r["gap_nats"] is None else f"{r['gap_nats']:+.2f}"
        pa = "" if r.get("published_active_units") is None else f" ({r['published_active_units']})"
        tc = "" if r.get("train_cpu_seconds") is None else f" ({r['train_cpu_seconds'] / 60:.1f})"
        ec = "" if r.get("eval_cpu_seconds") is None else f" ({r['eval_cpu_seconds'] / 60:.1f})"
        lines.append(f"| {r['binarization']} | {r['objective'].upper()} k={r['k']} | {r['test_nll']:.2f} | {pub} | {gap} | "
                     f"{r['test_elbo']:.2f} | {r['active_units']}{pa} | {r['schedule']} | {r['train_seconds'] / 60:.1f}{tc} min | "
                     f"{r['eval_seconds'] / 60:.1f}{ec} min, k={r['eval_k']} on {r['n_test']} images |")
    if rows:
        lines.append(f"\nmachine: {rows[-1]['machine']}\n")
    write_results("iwae_mnist", "\n".join(lines) + "\n", {"runs": rows})


if __name__ == "__main__":
    main()
