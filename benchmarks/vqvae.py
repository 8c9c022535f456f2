"""The VQ-VAE of van den Oord, Vinyals & Kavukcuoglu 2017 on CIFAR-10 (or any image data set), with its
bound in bits per dimension beside the paper's (section 4.1: VQ-VAE 4.67 bits/dim, VAE 4.51, VIMCO 5.14).

The paper's model: two stride-2 4x4 convolutions and two residual blocks of 256 channels, K = 512 codes,
beta = 0.25, the moving-average codebook (decay 0.99), Adam 2e-4, batch 128. The decoder here is a
discretized logistic over the 256 levels with a learned scale per pixel, so -log p(x | z_q) is in bits
of the 8-bit data. Reported on the test split: the bound -log p(x) <= -log p(x | z_q) - log p(z) per
dimension with the paper's uniform prior (log p(z) = -M log K) and with the gated PixelCNN prior that
trains alongside; the squared error of the reconstructions; the codes' perplexity and how many are used.

    nice -n 10 python benchmarks/vqvae.py --data cifar-10 --epochs 20
    python benchmarks/vqvae.py --data mnist --likelihood bernoulli --binarize dynamic --channels 32 \
        --code-dim 16 --codes 128 --prior-channels 32 --lr 1e-3 --epochs 10 --tag mnist_dynamic

With ``--binarize dynamic`` (MNIST) the training images are binarized afresh each epoch and the test
images once with a fixed seed, and the decoder is Bernoulli, so the bound in nats stands beside the
VAE's and IWAE's test ELBO of ``iwae_mnist.py``.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import common  # noqa: E402
from aekit import registry  # noqa: E402
from aekit.config import TrainConfig  # noqa: E402
from aekit.data import load_dataset  # noqa: E402
from aekit.evaluate.likelihood import bits_per_dim, elbo_terms  # noqa: E402
from aekit.train import fit  # noqa: E402

PUBLISHED = {"cifar-10": {"VQ-VAE": 4.67, "VAE": 4.51, "VIMCO": 5.14}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="cifar-10")
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--code-dim", type=int, default=64)
    p.add_argument("--codes", type=int, default=512)
    p.add_argument("--prior-channels", type=int, default=64)
    p.add_argument("--likelihood", default="discretized_logistic", choices=["discretized_logistic", "bernoulli"])
    p.add_argument("--binarize", default="none", choices=["none", "dynamic"])
    p.add_argument("--limit", type=int, default=0, help="train on the first LIMIT training images only (0: all)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", default=None, help="keep checkpoints and metrics.csv here (resumable)")
    p.add_argument("--tag", default=None, help="results file name suffix (default: the data set's name)")
    p.add_argument("--prior-epochs", type=int, default=0,
                   help="then train the PixelCNN prior alone this many epochs on the fixed VQ-VAE (the paper's order)")
    p.add_argument("--resume", action="store_true", help="continue the runs in --run-dir (a finished stage is kept)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.data, data_dir=common.data_dir(args.data_dir))
    x, x_test, x_val = data.train.x, data.test.x, data.val.x
    if args.limit:
        x = x[: args.limit]
    binarize = args.binarize == "dynamic"
    if binarize:   # one fixed draw for the held-out splits, as iwae_mnist.py does
        g = torch.Generator().manual_seed(args.seed)
        x_test, x_val = torch.bernoulli(x_test, generator=g), torch.bernoulli(x_val, generator=g)
    options = dict(input_shape=list(x.shape[1:]), architecture="conv", conv_channels=[args.channels] * 2,
                   residual_blocks=2, latent_dim=args.code_dim, num_codes=args.codes, beta=0.25,
                   codebook_update="ema", ema_decay=0.99, likelihood=args.likelihood,
                   decoder_variance="learned" if args.likelihood == "discretized_logistic" else "fixed",
                   prior_channels=args.prior_channels)
    model = registry.build("vqvae", options)
    tc = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, progress=False)
    print(f"$ {common.command()}\n{common.machine()}\n{data.name}: {x.shape[0]} training, {x_test.shape[0]} test images")
    rate = common.gemm_rate()
    run = Path(args.run_dir) if args.run_dir else None
    if args.resume and run is None:
        raise SystemExit("--resume needs --run-dir.")
    stages = [("joint", model, tc, run)]
    if args.prior_epochs:   # the paper's order: the prior fitted to the codes of the trained VQ-VAE
        stages.append(("prior", None, tc.replace(epochs=args.prior_epochs), run / "prior" if run else None))
    results, times = {}, {}
    for name, stage_model, config, folder in stages:
        if stage_model is None:
            stage_model = model.with_frozen_autoencoder()
        t0, c0 = time.perf_counter(), time.process_time()
        resume = bool(args.resume and folder is not None and (folder / "metrics.csv").exists())
        fit(stage_model, x, None, config=config, val_x=x_val if len(x_val) else None, run_dir=folder,
            resume=resume, binarize=binarize,
            on_epoch_end=lambda r, n=name: print(f"  {n} epoch {int(r['epoch'])}: loss {r['train_loss']:.1f} prior "
                                                 f"{r['train_prior_nll']:.1f} perplexity {r['train_perplexity']:.0f} "
                                                 f"({r['seconds']:.0f}s)", flush=True))
        times[name] = _stage_seconds(folder) or (time.perf_counter() - t0, time.process_time() - c0)
        results[name] = _evaluate(stage_model.eval(), x_test)
    wall = sum(w for w, _ in times.values())
    cpu = sum(c for _, c in times.values())
    result = {
        "data": data.name, "train_images": int(x.shape[0]), "epochs": args.epochs, "prior_epochs": args.prior_epochs,
        "options": options, "binarize": args.binarize, "lr": args.lr, "batch_size": args.batch_size,
        "stages": results, "stage_seconds": times, "wall_seconds": wall, "cpu_seconds": cpu, "gemm_gflops": rate / 1e9,
        "command": common.command(), "machine": common.machine(),
    }
    published = PUBLISHED.get(data.name)
    what = f"{args.epochs} epochs" + (f", then {args.prior_epochs} epochs of the prior alone" if args.prior_epochs else "")
    lines = [f"# VQ-VAE on {data.name}", "", f"`{result['command']}`", "", result["machine"],
             f"GEMM {rate / 1e9:.1f} GFLOP/s; {x.shape[0]} training images, {what}; training {wall / 60:.1f} min "
             f"wall, {cpu / 60:.1f} min CPU (read from the run folders' metrics.csv where there are run folders).", ""]
    head = "| test split | " + " | ".join(f"{'prior trained with the VQ-VAE' if n == 'joint' else 'prior refitted alone'}"
                                         for n in results) + " | published (van den Oord et al. 2017) |"
    lines += [head, "|---" * (len(results) + 2) + "|"]

    def row(label: str, fmt, pub: str = "–") -> str:
        return f"| {label} | " + " | ".join(fmt(r) for r in results.values()) + f" | {pub} |"

    lines += [row("bound, bits/dim, uniform prior over codes", lambda r: f"{r['bits_per_dim_uniform_prior']:.3f}",
                  f"VQ-VAE {published['VQ-VAE']}" if published else "–"),
              row("bound, bits/dim, PixelCNN prior", lambda r: f"{r['bits_per_dim_pixelcnn_prior']:.3f}"),
              row("bound, nats per image: uniform prior / PixelCNN prior",
                  lambda r: f"{-r['bound_nats_uniform_prior']:.2f} / {-r['bound_nats_pixelcnn_prior']:.2f}"),
              row("-log p(x \\| z_q), bits/dim", lambda r: f"{r['reconstruction_bits_per_dim']:.3f}"),
              row("squared error per value", lambda r: f"{r['test_mse']:.5f}"),
              row("code perplexity / codes used", lambda r: f"{r['code_perplexity']:.0f} / {r['codes_used']:.0f} of {args.codes}")]
    if published:
        lines += ["", f"The paper's other rows: VAE {published['VAE']}, VIMCO {published['VIMCO']} bits/dim."]
    text = "\n".join(lines) + "\n"
    print(text)
    md, _ = common.write_results(f"vqvae_{args.tag or data.name}", text, result)
    print(f"wrote {md}")


def _stage_seconds(folder: Path | None) -> tuple[float, float] | None:
    """Wall and CPU seconds of every epoch in a run folder's metrics.csv (a resumed run's sittings too)."""
    if folder is None or not (folder / "metrics.csv").exists():
        return None
    rows = list(csv.DictReader(open(folder / "metrics.csv")))
    return sum(float(r["seconds"]) for r in rows), sum(float(r["cpu_seconds"]) for r in rows)


@torch.no_grad()
def _evaluate(model, x_test: torch.Tensor) -> dict[str, float]:
    dims = math.prod(x_test.shape[1:])
    terms = elbo_terms(model, x_test, batch_size=500)
    m = model.grid[0] * model.grid[1]
    uniform = terms["log_px_given_z"] - m * math.log(model.config.num_codes)
    mse = float(sum(((model.reconstruct(x_test[i:i + 500]) - x_test[i:i + 500]) ** 2).sum()
                    for i in range(0, x_test.shape[0], 500)) / x_test.numel())
    return {
        "bound_nats_uniform_prior": float(uniform.mean()), "bound_nats_pixelcnn_prior": float(terms["elbo"].mean()),
        "log_px_given_z_nats": float(terms["log_px_given_z"].mean()),
        "bits_per_dim_uniform_prior": float(bits_per_dim(float(uniform.mean()), dims)),
        "bits_per_dim_pixelcnn_prior": float(bits_per_dim(float(terms["elbo"].mean()), dims)),
        "reconstruction_bits_per_dim": float(bits_per_dim(float(terms["log_px_given_z"].mean()), dims)),
        "test_mse": mse, **model.evaluation_terms(x_test),
    }


if __name__ == "__main__":
    main()
