"""MNIST with few labels: M1+SVM, M1+M2 and M2 (Kingma, Rezende, Mohamed & Welling 2014, "Semi-supervised
Learning with Deep Generative Models", Table 1), with the wall-clock time of every run.

Split as in the paper: 50,000 training images (N of them labelled, the same number per class, drawn with
the run's seed by aekit.semi.labelled_subset; the rest unlabelled), 10,000 validation, 10,000 test.

1. M1 (a VAE, 784-600-600-50 softplus, Bernoulli pixels, dynamic binarization) is trained once on all
   50,000 training images, no labels; every later run shares it, and its time is reported once.
   ``--m1-from`` uses a model trained elsewhere instead, e.g. an IWAE trained with `aekit train`:
   its posterior keeps more latent dimensions active, and M2 on its codes makes fewer errors.
2. For every N and label draw:
   - M1+SVM: scikit-learn SVC (RBF, default settings) on M1's posterior means of the N labelled images
     (the paper used a transductive SVM, which scikit-learn does not have);
   - M1+M2: M2 on M1's codes (inactive dimensions dropped, z1 resampled from q(z1|x) in every pass),
     one hidden layer of 300 units for N <= 100 and 500 otherwise, latent 50, alpha = 0.1, as in the
     authors' code; the test error after the last epoch is reported (no selection on the test set);
   - M2 on pixels (one hidden layer, latent 50, Bernoulli decoder on the grey levels), fewer draws and
     epochs (``--m2-pixel-draws``, ``--m2-pixel-epochs``): an epoch costs about 5x an M1+M2 epoch.
Each run is a separate process with ``--threads`` threads (``--workers`` run side by side): on a
2-core machine shared with other jobs, one thread per process avoids OpenMP synchronisation, which
otherwise costs many times the work itself.

    nice -n 10 python benchmarks/ssl_mnist.py     # the defaults: N = 100 and 1000, 3 draws, about 30 minutes
    # more draws of the same experiment later, then one table of all of them
    python benchmarks/ssl_mnist.py ... --draws 1 --first-draw 3 --name ssl_mnist_draw3
    python benchmarks/ssl_mnist.py --combine benchmarks/results/ssl_mnist.json \
        benchmarks/results/ssl_mnist_draw3.json --name ssl_mnist_all
    # runs longer than a sitting: a checkpoint per epoch; the same command again continues them
    python benchmarks/ssl_mnist.py --m1-from runs/m1 ... --run-dir runs/ssl_m2
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, command, data_dir, gemm_rate, linear_train_flops, machine, write_results  # noqa: E402

from aekit.config import TrainConfig  # noqa: E402
from aekit.data import load_dataset  # noqa: E402
from aekit.evaluate.analogy import analogy_grids, save_analogy_panels  # noqa: E402
from aekit.io import STATE_NAME, from_pretrained, load_state, read_config  # noqa: E402
from aekit.models.ssvae import M2, M2Config  # noqa: E402
from aekit.semi import (M1M2, active_dims, default_m1_config, default_m2_codes_config, fit_m1, fit_m2,  # noqa: E402
                        labelled_subset, oversample_labelled, posterior_codes)
from aekit.train import LAST  # noqa: E402

# Kingma et al. 2014, Table 1 (test error %, as listed in REFERENCES.md); None where not listed there.
PUBLISHED = {
    "M1+SVM": {100: 11.82, 600: 5.72, 1000: 4.24, 3000: 3.49},   # published with a transductive SVM
    "M2": {100: 11.97, 600: None, 1000: 3.60, 3000: None},
    "M1+M2": {100: 3.33, 600: None, 1000: 2.40, 3000: 2.18},
}
AUTHORS_CPU_HOURS_N3000 = 48.0

G: dict = {}  # data shared with the worker processes (inherited through fork)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir")
    p.add_argument("--labels", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--draws", type=int, default=3, help="label draws per N (seeds first-draw .. first-draw + draws - 1)")
    p.add_argument("--first-draw", type=int, default=0, help="seed of the first label draw (to add draws to earlier runs)")
    p.add_argument("--m1-epochs", type=int, default=12)
    p.add_argument("--m1-batch", type=int, default=100)
    p.add_argument("--m1-lr", type=float, default=1e-3)
    p.add_argument("--m1-hidden", type=int, nargs="+", default=[600, 600], help="M1's hidden layers (the paper: 600 600; the authors' code: 500 500)")
    p.add_argument("--m1-weight-decay", type=float, default=0.0,
                   help="L2 weight decay of M1's Adam (the authors' code: 1/N = 2e-5 per example, a N(0, 1) prior on the weights)")
    p.add_argument("--m1-warmup-epochs", type=float, default=4.0, help="KL weight rises from 0 to 1 over these epochs")
    p.add_argument("--m1-dir", help="keep the trained M1 here and reuse it when present (its training time is kept with it)")
    p.add_argument("--m1-from", metavar="PATH",
                   help="use a model trained elsewhere as M1 instead of training one: a saved VAE or IWAE, or the run "
                        "folder of `aekit train` (its last/ model; its training time from its metrics.csv)")
    p.add_argument("--m2-epochs", type=int, default=10)
    p.add_argument("--m2-batch", type=int, default=100)
    p.add_argument("--m2-lr", type=float, default=3e-3)
    p.add_argument("--m2-schedule", choices=["none", "cosine"], default="none",
                   help="M2's learning rate: constant, or cosine-annealed to 0 over its epochs")
    p.add_argument("--labelled-fraction", type=float, default=0.3)
    p.add_argument("--m2-alpha", type=float, default=0.1,
                   help="weight of the mean -log q(y|x) over labelled rows against the mean ELBO (the paper's 0.1)")
    p.add_argument("--m2-init-std", type=float, help="start M2's weights at N(0, s^2) as the authors' code does with "
                                                      "1e-3 (default: PyTorch's initialization)")
    p.add_argument("--small-n", type=int, default=100, help="N at or below which M2 has 300 hidden units (else 500)")
    p.add_argument("--m2-pixel-epochs", type=int, default=4, help="M2 on pixels (0: skip)")
    p.add_argument("--m2-pixel-draws", type=int, default=1)
    p.add_argument("--m2-pixel-lr", type=float, default=1e-3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--report-every", type=int, default=10, help="print a run's errors every this many epochs (0: only at the end)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--run-dir", metavar="DIR",
                   help="keep a checkpoint of every M2 / M1+M2 run here after each epoch, and continue from them when "
                        "the same command is run again (the runs' times then add the sittings' times)")
    p.add_argument("--name", default="ssl_mnist")
    p.add_argument("--no-write", action="store_true", help="print the results only (trial runs)")
    p.add_argument("--render", metavar="JSON", help="only rewrite the Markdown from a results JSON of this script (beside that JSON)")
    p.add_argument("--combine", metavar="JSON", nargs="+",
                   help="only merge results JSONs of this script that share M1 and the M2 settings (e.g. label draws "
                        "run in separate invocations with --first-draw) into one table, written under --name")
    return p.parse_args()


# -- M1 -----------------------------------------------------------------------------------------
def describe_m1(m1: torch.nn.Module) -> str:
    c = m1.config
    sizes = "-".join(map(str, [784, *c.hidden_dims, c.latent_dim]))
    what = f"IWAE k={c.k}" if getattr(c, "objective", "vae") == "iwae" else "VAE"
    bias = ", its decoder started at the data mean" if getattr(c, "output_bias", "zero") == "data" else ""
    return f"{what} {sizes} {c.activation}{bias}"


def load_m1(path: Path) -> tuple[torch.nn.Module, float | None, str]:
    """A trained M1 from a saved model or an `aekit train` run folder: the model, its training seconds
    (None when nothing recorded them) and a sentence on how it was trained."""
    from aekit.train import LAST, read_metrics

    if (path / LAST / "config.json").is_file():
        m1, rows = from_pretrained(path / LAST), read_metrics(path / "metrics.csv")
        run = json.loads((path / "run.json").read_text()) if (path / "run.json").is_file() else {}
        seen = (f" on {run['n_train']:,} training images" if "n_train" in run
                else " (the run folder does not record its training images)")
        t = run.get("train_config")
        how = (f" (batch {t['batch_size']}, {t['optimizer']} lr {t['lr']:g}, schedule {t['schedule']}"
               + (f" gamma {t['gamma']:g}" if t["schedule"] in ("exponential", "step", "multistep") else "") + ")") if t else ""
        for sitting in run.get("resumed", []):  # later sittings that changed the trainer's options
            changes = ", ".join(f"{k} {v}" for k, v in sitting["changed"].items() if k not in ("epochs", "progress"))
            how += f"; resumed after pass {sitting['after_epoch']}" + (f" with {changes}" if changes else "")
        text = f"{describe_m1(m1)}, trained in the run folder {path} for {len(rows)} passes{seen}{how}"
        return m1, sum(r["seconds"] for r in rows), text
    m1 = from_pretrained(path)
    meta = read_config(path)
    return m1, meta.get("train_seconds"), f"{describe_m1(m1)}, loaded from {path}"


def train_m1(args: argparse.Namespace, x: torch.Tensor, val_x: torch.Tensor) -> tuple[torch.nn.Module, float, dict]:
    if args.m1_from:
        m1, seconds, text = load_m1(Path(args.m1_from))
        if seconds is None:
            raise SystemExit(f"--m1-from {args.m1_from}: its training time was not recorded; give a run folder.")
        print(f"M1: {text} ({seconds:.0f} s of training)", flush=True)
        return m1.eval(), seconds, {"description": text}
    cache = Path(args.m1_dir) if args.m1_dir else None
    if cache is not None and (cache / "config.json").is_file():
        meta = read_config(cache)
        same = (meta.get("epochs") == args.m1_epochs and meta.get("warmup_epochs", 0.0) == args.m1_warmup_epochs
                and list(meta["config"].get("hidden_dims", [])) == args.m1_hidden
                and meta.get("weight_decay", 0.0) == args.m1_weight_decay)
        if not same:   # refuse rather than overwrite an M1 that took minutes to train
            raise SystemExit(f"--m1-dir {cache} holds an M1 trained with other settings; give another folder.")
        print(f"M1: reusing {cache} ({meta['train_seconds']:.0f} s of training)", flush=True)
        return from_pretrained(cache), float(meta["train_seconds"]), meta.get("history_last", {})
    torch.manual_seed(0)
    last: dict = {}

    def report(row: dict) -> None:
        last.update(row)
        print(f"  M1 epoch {int(row['epoch'])}: train ELBO {row['train_elbo']:.2f}, val ELBO {row['val_elbo']:.2f} "
              f"({row['seconds']:.1f} s)", flush=True)

    t0 = time.perf_counter()
    warmup = int(round(args.m1_warmup_epochs * math.ceil(x.shape[0] / args.m1_batch)))
    config = default_m1_config((784,), kl_warmup_steps=warmup, hidden_dims=tuple(args.m1_hidden))
    m1 = fit_m1(x, config=config, val_x=val_x, binarize=True, on_epoch_end=report,
                train_config=TrainConfig(epochs=args.m1_epochs, batch_size=args.m1_batch, lr=args.m1_lr, seed=0, progress=False,
                                         weight_decay=args.m1_weight_decay))
    seconds = time.perf_counter() - t0
    if cache is not None:
        m1.save_pretrained(cache, epochs=args.m1_epochs, warmup_epochs=args.m1_warmup_epochs, train_seconds=seconds,
                           weight_decay=args.m1_weight_decay,
                           history_last=last)
    return m1, seconds, last


def all_labels_svm(means: dict, train_y: torch.Tensor, test_y: torch.Tensor) -> dict:
    """Test error of an SVC fitted on M1's posterior means of all 50,000 labelled training images: how far
    M1's features separate the classes when labels are no constraint (a diagnostic, not a result)."""
    from sklearn.svm import SVC

    t0 = time.perf_counter()
    svc = SVC().fit(means["train"], train_y.numpy())
    error = svc_error(svc, means["test"], test_y)
    return {"test_error": round(error, 2), "seconds": round(time.perf_counter() - t0, 1)}


def svc_error(svc, x, y: torch.Tensor) -> float:
    """Test error (%) of a fitted scikit-learn classifier on features ``x`` with labels ``y``."""
    return float((svc.predict(x) != y.numpy()).mean()) * 100.0


# -- runs (in worker processes) -------------------------------------------------------------------
def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


@torch.no_grad()
def _error(model: M2, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    pred = torch.cat([model.predict(x[i: i + 2000]) for i in range(0, x.shape[0], 2000)])
    return float((pred != y).float().mean()) * 100.0


def run_job(job: tuple[str, int, int]) -> dict:
    method, n, draw = job
    a = G["args"]
    t0 = time.perf_counter()
    y = labelled_subset(G["train_y"], n, seed=draw)
    result = {"method": method, "labels": n, "draw": draw}
    if method == "M1+SVM":
        from sklearn.svm import SVC

        lab = (y >= 0).numpy()
        svc = SVC().fit(G["means"]["train"][lab], y.numpy()[lab])
        result["test_error"] = svc_error(svc, G["means"]["test"], G["test_y"])
        result["val_error"] = svc_error(svc, G["means"]["val"], G["val_y"])
    else:
        pixels = method == "M2"
        hidden = (300,) if n <= a.small_n else (500,)
        if pixels:
            config = M2Config(input_shape=(784,), hidden_dims=hidden, latent_dim=50, likelihood="bernoulli",
                              init_std=a.m2_init_std, alpha=a.m2_alpha)
            xs = {"train": G["x"]["train"], "val": G["x"]["val"], "test": G["x"]["test"]}
            epochs, lr = a.m2_pixel_epochs, a.m2_pixel_lr
        else:
            config = default_m2_codes_config(G["d"], 10, hidden_dims=hidden, init_std=a.m2_init_std, alpha=a.m2_alpha)
            xs = G["codes"]
            epochs, lr = a.m2_epochs, a.m2_lr
        torch.manual_seed(1000 + draw)
        model = M2(config)
        settings = {"m1": G["m1_source"], "config": config.to_dict(), "epochs": epochs, "lr": lr, "batch": a.m2_batch,
                    "schedule": a.m2_schedule, "labelled_fraction": a.labelled_fraction}
        settings = json.loads(json.dumps(settings))   # as it reads back from settings.json
        folder, curve, resume = resumable_run(a.run_dir, method, n, draw, settings)
        new_sitting = [True] if resume else []
        if curve:   # the time of the earlier sittings counts
            t0 -= curve[-1]["seconds"]
            result["earlier_sittings_seconds"] = curve[-1]["seconds"]

        def on_epoch(row: dict) -> None:
            curve.append({"epoch": int(row["epoch"]), "seconds": round(time.perf_counter() - t0, 1),
                          "train_elbo": round(row["train_elbo"], 3),
                          "val_error": round(_error(model, xs["val"], G["val_y"]), 2),
                          "test_error": round(_error(model, xs["test"], G["test_y"]), 2)})
            e = curve[-1]
            if new_sitting:   # the first epoch of a later sitting
                e["resumed"], new_sitting[:] = True, []
            if folder is not None:
                (folder / CURVE).write_text(json.dumps(curve))
            if a.report_every and (e["epoch"] % a.report_every == 0 or e["epoch"] == epochs):
                print(f"    {method} N={n} draw {draw} epoch {e['epoch']}: val error {e['val_error']:.2f}%, "
                      f"test error {e['test_error']:.2f}%, train ELBO {e['train_elbo']:.3f} ({e['seconds']:.0f} s)",
                      flush=True)

        fit_m2(xs["train"], y, model=model, labelled_fraction=a.labelled_fraction, on_epoch_end=on_epoch,
               train_config=TrainConfig(epochs=epochs, batch_size=a.m2_batch, lr=lr, seed=draw, progress=False,
                                        schedule=a.m2_schedule),
               run_dir=folder, resume=resume)
        result.update(test_error=curve[-1]["test_error"], val_error=curve[-1]["val_error"], epochs=epochs,
                      hidden=list(hidden), curve=curve, sittings=1 + sum(1 for e in curve if e.get("resumed")))
        if draw == a.first_draw and n == max(a.labels):   # kept for the analogy figure
            model.save_pretrained(Path(G["tmp"]) / f"{method}-{n}")
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"  {method} N={n} draw {draw}: test error {result['test_error']:.2f}% in {result['seconds']:.0f} s", flush=True)
    return result


CURVE, SETTINGS = "curve.json", "settings.json"


def resumable_run(run_dir: str | None, method: str, n: int, draw: int, settings: dict) -> tuple[Path | None, list[dict], bool]:
    """The checkpoint folder of one run under ``--run-dir`` (None without it), the per-epoch errors of its
    earlier sittings (up to its last checkpoint) and whether to resume it; a folder whose run had other
    ``settings`` (M1, M2's options) is refused."""
    if run_dir is None:
        return None, [], False
    folder = Path(run_dir) / f"{method}-N{n}-draw{draw}"
    state = folder / LAST / STATE_NAME
    if not state.exists():
        if (folder / "metrics.csv").exists():   # started, but no checkpoint yet: begin again
            (folder / "metrics.csv").unlink()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SETTINGS).write_text(json.dumps(settings, indent=1))
        return folder, [], False
    earlier = json.loads((folder / SETTINGS).read_text())
    if earlier != settings:
        changed = ", ".join(f"{k} {earlier.get(k)!r} -> {v!r}" for k, v in settings.items() if earlier.get(k) != v)
        raise ValueError(f"{folder} holds a run with other settings ({changed}); use another --run-dir.")
    done = int(load_state(state)["epoch"])
    curve = [e for e in json.loads((folder / CURVE).read_text()) if e["epoch"] <= done]
    print(f"  {method} N={n} draw {draw}: resuming after epoch {done} from {folder}", flush=True)
    return folder, curve, True


# -- FLOP floors --------------------------------------------------------------------------------
def m2_epoch_flops(d: int, hidden: int, n_rows: int, n_lab: int, c: int = 10, latent: int = 50, out: int | None = None) -> float:
    """Matmul FLOPs of one M2 epoch: classifier and x-part of q(z|x,y) on every row; the rest of
    q(z|x,y) and the decoder on the N_l + C N_u expanded rows."""
    out = out if out is not None else 2 * d
    r = n_lab + c * (n_rows - n_lab)
    rows = linear_train_flops([(d, hidden), (hidden, c)], n_rows) + linear_train_flops([(d, hidden)], n_rows)
    return rows + linear_train_flops([(c, hidden), (hidden, 2 * latent), (latent + c, hidden), (hidden, out)], r, True)


def main() -> int:
    args = parse_args()
    if args.render:
        source = Path(args.render)
        data = json.loads(source.read_text())
        if not args.no_write:  # next to the JSON it came from, under the same name
            source.with_suffix(".md").write_text(markdown(data))
        print(markdown(data))
        return 0
    if args.combine:
        try:
            if (RESULTS / f"{args.name}.json").resolve() in {Path(f).resolve() for f in args.combine} and not args.no_write:
                raise ValueError(f"--name {args.name} would overwrite one of the files being combined; choose another name.")
            data = combine([Path(f) for f in args.combine])
        except ValueError as e:
            print(f"ssl_mnist.py: {e}", file=sys.stderr)
            return 2
        print(markdown(data))
        if not args.no_write:
            md, js = write_results(args.name, markdown(data), data)
            print(f"wrote {md} and {js}")
        return 0
    if args.run_dir and not (args.m1_from or args.m1_dir):
        print("ssl_mnist.py: --run-dir continues M2 runs on the same M1; give it --m1-from or --m1-dir.", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M")
    load0 = os.getloadavg()
    rate = gemm_rate(1024, 5)
    d = load_dataset("mnist", data_dir=data_dir(args.data_dir))
    x = {k: getattr(d, k).x.reshape(-1, 784) for k in ("train", "val", "test")}
    print(f"MNIST {len(x['train'])}/{len(x['val'])}/{len(x['test'])}; GEMM rate {rate / 1e9:.1f} GFLOP/s "
          f"with {args.threads} thread(s); load average {load0[0]:.2f}", flush=True)

    m1, m1_seconds, m1_last = train_m1(args, x["train"], x["val"])
    dims = active_dims(m1, x["train"])
    codes = {k: posterior_codes(m1, v, dims) for k, v in x.items()}
    means = {k: posterior_codes(m1, v)[:, 0].numpy() for k, v in x.items()}
    print(f"M1: {m1_seconds:.0f} s; {dims.numel()} of {m1.config.latent_dim} latent dimensions active", flush=True)
    ceiling = all_labels_svm(means, d.train.y, d.test.y)
    print(f"M1 features: SVC with all 50,000 labels, test error {ceiling['test_error']:.2f}% ({ceiling['seconds']:.0f} s)", flush=True)
    G.update(args=args, x=x, m1_source=str(Path(args.m1_from or args.m1_dir or "").resolve()) if args.run_dir else None, codes=codes, means=means, d=int(dims.numel()), tmp=tempfile.mkdtemp(prefix="ssl_mnist-"),
             train_y=d.train.y, val_y=d.val.y, test_y=d.test.y)

    jobs = [("M2", n, s) for n in args.labels for s in range(args.m2_pixel_draws)] if args.m2_pixel_epochs else []
    seeds = range(args.first_draw, args.first_draw + args.draws)
    jobs += [("M1+M2", n, s) for n in sorted(args.labels, reverse=True) for s in seeds]
    jobs += [("M1+SVM", n, s) for n in args.labels for s in seeds]
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(args.workers, initializer=_init_worker, initargs=(args.threads,)) as pool:
        try:
            runs = pool.map(run_job, jobs, chunksize=1)
        except ValueError as e:   # a --run-dir folder of other settings
            print(f"ssl_mnist.py: {e}", file=sys.stderr)
            return 2
    runs_wall = time.perf_counter() - t0

    # FLOP floors of one epoch at the measured GEMM rate (one thread per process).
    sizes = [784, *args.m1_hidden]
    m1_layers = list(zip(sizes[:-1], sizes[1:]))
    m1_flops = linear_train_flops(m1_layers + [(sizes[-1], 100), (50, sizes[-1])] + [(o, i) for i, o in reversed(m1_layers)], 50_000)
    floors = {} if args.m1_from else {"M1 epoch": m1_flops / rate}
    for n in args.labels:
        y_l = labelled_subset(d.train.y, n, 0)
        _, yo = oversample_labelled(x["train"][:, :1], y_l, args.labelled_fraction)
        hid = 300 if n <= args.small_n else 500
        floors[f"M1+M2 epoch (N={n})"] = m2_epoch_flops(G["d"], hid, len(yo), int((yo >= 0).sum())) / rate
        if args.m2_pixel_epochs:
            floors[f"M2 epoch (N={n})"] = m2_epoch_flops(784, hid, len(yo), int((yo >= 0).sum()), out=784) / rate

    figures = analogy_figures(args, m1, dims)
    summary = summarize(runs, m1_seconds)
    data = {
        "command": command(), "machine": machine(), "started": started, "load_average_start": load0,
        "load_average_end": os.getloadavg(), "gemm_gflops_per_process": round(rate / 1e9, 2),
        "settings": {k: v for k, v in vars(args).items()},
        "m1": {"seconds": round(m1_seconds, 1), "epochs": args.m1_epochs, "active_dims": int(dims.numel()),
               "latent_dim": int(m1.config.latent_dim), "description": m1_last.get("description"),
               "all_labels_svm": ceiling,
               "last_epoch": m1_last},
        "runs_wall_seconds": round(runs_wall, 1), "epoch_floor_seconds": {k: round(v, 2) for k, v in floors.items()},
        "published": {m: {str(k): v for k, v in t.items()} for m, t in PUBLISHED.items()},
        "summary": summary, "runs": runs, "figures": figures,
    }
    print(markdown(data))
    if not args.no_write:
        md, js = write_results(args.name, markdown(data), data)
        print(f"wrote {md} and {js}")
    return 0


def analogy_figures(args: argparse.Namespace, m1: torch.nn.Module, dims: torch.Tensor) -> list[str]:
    """Kingma et al. 2014, Fig. 1: the M1+M2 (and M2) model of the first draw at the largest N, on test images."""
    if args.no_write:
        return []
    written = []
    x, y = G["x"]["test"][:10], G["test_y"][:10]
    for method in ("M1+M2", "M2"):
        path = Path(G["tmp"]) / f"{method}-{max(args.labels)}"
        if not path.is_dir():
            continue
        m2 = from_pretrained(path)
        gen = torch.Generator().manual_seed(0)
        if method == "M1+M2":
            grids = M1M2(m1, dims, m2).analogy_grids(x, y, 10, gen)
        else:
            grids = analogy_grids(m2, x, y, 10, gen)
        out = RESULTS / f"{args.name}_analogies_{method.replace('+', '')}.png"
        save_analogy_panels(*grids, (1, 28, 28), out)
        written.append(str(out.relative_to(RESULTS.parent.parent)))
    return written


# Settings that must agree for runs of several invocations to be one experiment (labels, draws,
# workers and names may differ).
SHARED_SETTINGS = ("m1_from", "m1_epochs", "m1_batch", "m1_lr", "m1_hidden", "m1_weight_decay", "m1_warmup_epochs",
                   "m2_epochs", "m2_batch", "m2_lr", "m2_schedule", "labelled_fraction", "m2_alpha", "m2_init_std", "small_n",
                   "m2_pixel_epochs", "m2_pixel_lr")
SETTING_DEFAULTS = {"m2_alpha": 0.1}  # of settings added after results were written without them


def combine(paths: list[Path]) -> dict:
    """One results record from several invocations of this script that ran the same experiment on other
    label counts or draws; raises ValueError (one sentence) when they did not."""
    sources = []
    for path in paths:
        try:
            sources.append((path, json.loads(path.read_text())))
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read {path} as a results JSON of this script ({e}).") from None
    (first_path, first), rest = sources[0], sources[1:]
    for path, d in rest:
        for key in SHARED_SETTINGS:
            ours, theirs = (x["settings"].get(key, SETTING_DEFAULTS.get(key)) for x in (d, first))
            if ours != theirs:
                raise ValueError(f"{path} and {first_path} differ in {key} ({ours!r} against {theirs!r}), "
                                 "so their runs are not one experiment.")
        if d["m1"].get("description") != first["m1"].get("description"):
            raise ValueError(f"{path} and {first_path} used different M1 models.")
    runs, seen = [], {}
    for path, d in sources:
        for r in d["runs"]:
            key = (r["method"], r["labels"], r["draw"])
            if key in seen:
                raise ValueError(f"{path} and {seen[key]} both hold {r['method']} N = {r['labels']} draw {r['draw']}.")
            seen[key] = path
            runs.append(r)
    settings = {**first["settings"], "labels": sorted({r["labels"] for r in runs}),
                "draw_seeds": sorted({r["draw"] for r in runs})}
    return {
        "command": command(), "machine": first["machine"], "started": min(d["started"] for _, d in sources),
        "load_average_start": first["load_average_start"], "load_average_end": sources[-1][1]["load_average_end"],
        "gemm_gflops_per_process": first["gemm_gflops_per_process"], "settings": settings, "m1": first["m1"],
        "runs_wall_seconds": sum(d["runs_wall_seconds"] for _, d in sources),
        "epoch_floor_seconds": {k: v for _, d in sources for k, v in d["epoch_floor_seconds"].items()},
        "published": first["published"], "summary": summarize(runs, first["m1"]["seconds"]), "runs": runs,
        "figures": [f for _, d in sources for f in d["figures"]],
        "sources": [{"file": str(path), "command": d["command"], "started": d["started"],
                     "load_average": [d["load_average_start"][0], d["load_average_end"][0]],
                     "runs_wall_seconds": d["runs_wall_seconds"]} for path, d in sources],
    }


def summarize(runs: list[dict], m1_seconds: float) -> list[dict]:
    out = []
    for method in ("M1+SVM", "M2", "M1+M2"):
        for n in sorted({r["labels"] for r in runs}):
            rs = [r for r in runs if r["method"] == method and r["labels"] == n]
            if not rs:
                continue
            errs = [r["test_error"] for r in rs]
            secs = [r["seconds"] for r in rs]
            out.append({
                "method": method, "labels": n, "draws": len(rs),
                "test_error_mean": round(statistics.fmean(errs), 2),
                "test_error_std": round(statistics.stdev(errs), 2) if len(errs) > 1 else None,
                "test_errors": errs, "seconds_mean": round(statistics.fmean(secs), 1),
                "m1_seconds": round(m1_seconds, 1) if method != "M2" else 0.0,
                "published": PUBLISHED[method].get(n),
            })
    return out


def markdown(data: dict) -> str:
    s = data["settings"]
    annealed = ", cosine-annealed to 0" if s.get("m2_schedule", "none") == "cosine" else ""
    alpha = s.get("m2_alpha", 0.1)
    if data.get("sources"):
        head = [f"Combined by `{data['command']}` from {len(data['sources'])} invocations on {data['machine']}:", ""]
        head += [f"- `{src['file']}`: `{src['command']}` (started {src['started']}, load average "
                 f"{src['load_average'][0]:.2f} → {src['load_average'][1]:.2f}, runs {src['runs_wall_seconds']:.0f} s)"
                 for src in data["sources"]]
        head += ["", f"Measured GEMM rate per process {data['gemm_gflops_per_process']} GFLOP/s (first invocation)."]
    else:
        head = [
            f"Command: `{data['command']}`  ",
            f"Machine: {data['machine']}; load average {data['load_average_start'][0]:.2f} at the start, "
            f"{data['load_average_end'][0]:.2f} at the end (the 2 cores are shared with other jobs)  ",
            f"Started {data['started']}; {s['workers']} worker process(es) with {s['threads']} thread(s) each; "
            f"measured GEMM rate per process {data['gemm_gflops_per_process']} GFLOP/s."]
    lines = [
        "# Semi-supervised MNIST: M1+SVM, M2, M1+M2 (Kingma et al. 2014, Table 1)", "", *head, "",
        f"M1: {m1_text(data)}, trained once in "
        f"**{data['m1']['seconds']:.0f} s** and shared by every M1+SVM and M1+M2 run; "
        f"{data['m1']['active_dims']} of its {data['m1'].get('latent_dim', 50)} latent dimensions are active (posterior-mean std > 0.1)"
        + (f"; an SVC on its posterior means with all 50,000 labels has {data['m1']['all_labels_svm']['test_error']:.2f}% "
           "test error (how well its features separate the classes when every label is known)" if data["m1"].get("all_labels_svm") else "") + ". "
        f"M2: {s['m2_epochs']} epochs on M1's codes (batch {s['m2_batch']}, Adam {s['m2_lr']}{annealed}, alpha {alpha:g}"
        f"{'' if alpha == 0.1 else ' (the paper: 0.1)'}, "
        f"labelled rows repeated to make up {s['labelled_fraction']:.0%} of the rows wherever they are fewer"
        + (f", weights initialized from N(0, {s['m2_init_std']:g}^2)" if s.get("m2_init_std") else "") + ")"
        + (f"; M2 on pixels: {s['m2_pixel_epochs']} epochs (Adam {s['m2_pixel_lr']}{annealed}), {s['m2_pixel_draws']} draw(s)."
           if s["m2_pixel_epochs"] else "; M2 on pixels not run."), "",
        f"Whole benchmark: {(data['m1']['seconds'] + data['runs_wall_seconds']) / 60:.1f} min of wall-clock time "
        f"(M1 {data['m1']['seconds']:.0f} s, then all runs {data['runs_wall_seconds']:.0f} s"
        + (", the invocations' run times added" if data.get("sources") else "") + ")" + earlier_text(data["runs"]) + ".", "",
        f"Test error (%) after the last epoch, mean ± std over label draws (seeds {seeds_text(s)}); time per run is the "
        "wall-clock time of that run in its process (for M1+M2 add M1's time, paid once).", "",
        "| N | method | test error % | per draw | time per run (s) | + M1 (s, once) | published |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(data["summary"], key=lambda r: (r["labels"], r["method"])):
        std = f" ± {r['test_error_std']:.2f}" if r["test_error_std"] is not None else ""
        pub = "–" if r["published"] is None else f"{r['published']:.2f}" + (" (TSVM)" if r["method"] == "M1+SVM" else "")
        per = ", ".join(f"{e:.2f}" for e in r["test_errors"])
        lines.append(f"| {r['labels']} | {r['method']} | {r['test_error_mean']:.2f}{std} | {per} | "
                     f"{r['seconds_mean']:.0f} | {r['m1_seconds']:.0f} | {pub} |")
    floors = ", ".join(f"{k} {v:.1f} s" for k, v in data["epoch_floor_seconds"].items())
    if data["figures"]:
        lines += ["", "Analogies (fix the style z of a test image, vary y; fix y, vary z): "
                  + ", ".join(f"`{f}`" for f in data["figures"]) + "."]
    lines += ["", f"Epoch floors (matmul FLOPs / measured GEMM rate): {floors}.", ""]
    return "\n".join(lines + shortfall(data))


def earlier_text(runs: list[dict]) -> str:
    """The runs continued from checkpoints of earlier sittings (``--run-dir``), whose time the total above lacks."""
    resumed = [r for r in runs if r.get("earlier_sittings_seconds")]
    if not resumed:
        return ""
    return (f", plus {sum(r['earlier_sittings_seconds'] for r in resumed):.0f} s of run time in earlier sittings of "
            f"{len(resumed)} run(s) continued from their checkpoints (counted in their time per run)")


def seeds_text(s: dict) -> str:
    first = s.get("first_draw", 0)
    return ", ".join(str(seed) for seed in s.get("draw_seeds", range(first, first + s["draws"])))


def m1_text(data: dict) -> str:
    s = data["settings"]
    if data["m1"].get("description"):
        return data["m1"]["description"]
    return (f"784-{'-'.join(map(str, s.get('m1_hidden', [600, 600])))}-50, {s['m1_epochs']} epochs (batch {s['m1_batch']}, "
            f"Adam {s['m1_lr']}{', weight decay %g' % s['m1_weight_decay'] if s.get('m1_weight_decay') else ''}, KL warm-up over "
            f"{s['m1_warmup_epochs']:g} epochs)")


def shortfall(data: dict) -> list[str]:
    """How far each result is from the published one, the time spent, and the trend at the last epoch."""
    s = data["settings"]
    lines = ["## Against the paper", ""]
    for r in sorted(data["summary"], key=lambda r: (r["method"], r["labels"])):
        if r["published"] is None:
            continue
        gap = r["test_error_mean"] - r["published"]
        minutes = (r["seconds_mean"] + r["m1_seconds"]) / 60
        lines.append(f"- {r['method']}, N = {r['labels']}: {r['test_error_mean']:.2f}% against {r['published']:.2f}%, "
                     f"{abs(gap):.2f} points {'above' if gap > 0 else 'below'} ({r['test_error_mean'] / r['published']:.1f}x), "
                     f"in {minutes:.1f} min of one process{' (M1 included)' if r['m1_seconds'] else ''}: "
                     f"{minutes / 60 / AUTHORS_CPU_HOURS_N3000:.2%} of the authors' {AUTHORS_CPU_HOURS_N3000:.0f} CPU-hours "
                     "for N = 3000.")
    trends = []
    for method in ("M1+M2", "M2"):
        for n in sorted({r["labels"] for r in data["runs"]}):
            curves = [r["curve"] for r in data["runs"] if r["method"] == method and r["labels"] == n and r.get("curve")]
            if curves and all(len(c) >= 4 for c in curves):
                slope = statistics.fmean((c[-1]["test_error"] - c[-4]["test_error"]) / 3 for c in curves)
                trends.append(f"{method} N = {n}: {slope:+.2f} points per epoch")
    # A statement of how this run differs from the authors', not a diagnosis: whether more training would
    # close the gap is for runs of different lengths to show (see README and the curves in the JSON).
    lines += ["", f"How this run differs from the authors': M2 ran {s['m2_epochs']} epochs on M1's codes (M2 on pixels "
              f"{s['m2_pixel_epochs']}) after {'M1 (above)' if data['m1'].get('description') else str(s['m1_epochs']) + ' epochs of M1'}, where the authors ran 3000 epochs of M2 "
              "on an M1 trained far longer; the 2 cores were shared with other jobs throughout (load averages above). "
              "Change of the test error over the last three epochs (mean over draws; negative: still falling): "
              + ("; ".join(trends) if trends else "n/a") + ". "
              "M1+SVM uses scikit-learn's inductive SVC where the paper used a transductive SVM.", ""]
    return lines


if __name__ == "__main__":
    sys.exit(main())
