"""Denoising MNIST and Fashion-MNIST test images with denoising autoencoders (Vincent et al. 2008;
2010), scored by PSNR and SSIM (Wang et al. 2004) against the clean images.

For each data set and noise (masking nu = 25%; additive Gaussian sigma = 0.3, clipped to [0, 1]):
a ``dae`` trained on the 50k training images with that same corruption denoises the 10k test
images, corrupted once with a fixed seed. Beside it: the noisy input itself, and PCA denoising
(projecting the noisy image onto the top-k principal subspace of the clean training images, with k
equal to the DAE's code size). There is no published number for this exact setting.

    nice -n 10 python benchmarks/denoising.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import _regbench as rb  # noqa: E402
from aekit import registry  # noqa: E402
from aekit.config import TrainConfig  # noqa: E402
from aekit.corruption import corrupt  # noqa: E402
from aekit.cli.denoise import write_grid  # noqa: E402
from aekit.evaluate.image import denoising_report  # noqa: E402
from aekit.evaluate.image import psnr as image_psnr  # noqa: E402
from aekit.train import fit  # noqa: E402

NOISES = {"masking": 0.25, "gaussian": 0.3}


def pca_denoise(x_train: torch.Tensor, noisy: torch.Tensor, k: int) -> torch.Tensor:
    """Project noisy (N, D) onto the top-k principal subspace of the clean training set, clipped to [0, 1]."""
    xd = x_train.double()
    mean = xd.mean(0)
    _, vecs = torch.linalg.eigh((xd - mean).T @ (xd - mean) / xd.shape[0])
    v = vecs[:, -k:]                                              # (D, k)
    return (((noisy.double() - mean) @ v) @ v.T + mean).clamp(0, 1).float()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    p.add_argument("--noises", nargs="+", default=list(NOISES), choices=list(NOISES))
    p.add_argument("--hidden", type=int, nargs="*", default=[512])
    p.add_argument("--latent-dim", type=int, default=128)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    info = rb.machine(args.threads)
    md = [rb.header("Denoising MNIST and Fashion-MNIST with denoising autoencoders", info)]
    rows, results = [], {}
    for name in args.datasets:
        data = rb.load(name)
        x, xt = data.train.x.reshape(-1, 784), data.test.x.reshape(-1, 784)
        for kind in args.noises:
            level = NOISES[kind]
            noisy = corrupt(xt, kind, level, torch.Generator().manual_seed(args.seed), clip=True)
            options = {"input_shape": [784], "hidden_dims": args.hidden, "latent_dim": args.latent_dim,
                       "activation": "relu", "code_activation": "identity", "tied_weights": False,
                       "likelihood": "bernoulli", "corruption": kind, "corruption_level": level,
                       "corruption_clip": kind == "gaussian"}
            torch.manual_seed(args.seed)
            model = registry.build("dae", options)
            tc = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, progress=False)
            curve = []

            def on_epoch(row, model=model, curve=curve, noisy=noisy, xt=xt):
                with torch.no_grad():
                    den = torch.cat([model.reconstruct(b) for b in noisy.split(2000)])
                psnr = float(image_psnr(den, xt).mean())
                curve.append({"epoch": int(row["epoch"]), "seconds": round(row["seconds"] + (curve[-1]["seconds"] if curve else 0), 1),
                              "psnr_denoised": psnr})
                print(f"{name} {kind} epoch {int(row['epoch'])}: loss {row['train_loss']:.2f}, test PSNR {psnr:.2f} dB", flush=True)

            fit(model, x, config=tc, on_epoch_end=on_epoch)
            with torch.no_grad():
                den = torch.cat([model.reconstruct(b) for b in noisy.split(2000)]).clamp(0, 1)
            dae = denoising_report(noisy, den, xt)
            grid = rb.RESULTS / f"denoising_{name}_{kind}.png"
            write_grid(grid, (1, 28, 28), noisy[:16], den[:16], xt[:16], title=f"{name}, {kind}: noisy | DAE | clean")
            pca = denoising_report(noisy, pca_denoise(x, noisy, args.latent_dim), xt)
            key = f"{name}/{kind}"
            results[key] = {"level": level, "noisy": {"psnr": dae["psnr_noisy"], "ssim": dae["ssim_noisy"]},
                            "pca": {"psnr": pca["psnr_denoised"], "ssim": pca["ssim_denoised"]},
                            "dae": {"psnr": dae["psnr_denoised"], "ssim": dae["ssim_denoised"]},
                            "train_seconds": curve[-1]["seconds"], "model_options": options, "curve": curve}
            level_text = f"nu = {level:.0%}" if kind == "masking" else f"sigma = {level}"
            rows.append([name, f"{kind} {level_text}", dae["psnr_noisy"], pca["psnr_denoised"], dae["psnr_denoised"],
                         dae["ssim_noisy"], pca["ssim_denoised"], dae["ssim_denoised"], f"{curve[-1]['seconds']:.0f} s"])
    arch = "-".join(map(str, [784, *args.hidden, args.latent_dim, *reversed(args.hidden), 784]))
    md.append(f"DAE: {arch} MLP (ReLU hidden layers, linear code, sigmoid output, cross-entropy), trained with its test "
              f"corruption; Adam lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs (a short schedule), seed {args.seed}. "
              f"PCA: projection onto the top {args.latent_dim} principal components of the clean training images. Test "
              f"images corrupted once (seed {args.seed}); Gaussian-noisy images clipped to [0, 1]. PSNR in dB and SSIM "
              "(11x11 Gaussian window, sigma 1.5) are means over the 10k test images against the clean ones; "
              "no published numbers exist for this setting.\n")
    md.append(rb.table(rows, ["data", "noise", "PSNR noisy", "PSNR PCA", "PSNR DAE", "SSIM noisy", "SSIM PCA",
                              "SSIM DAE", "DAE training time"]))
    md.append("\nPictures (first 16 test images): " + ", ".join(f"denoising_{k.replace('/', '_')}.png" for k in results))
    md.append("\nTime-to-quality (seconds of training: test PSNR of the DAE, dB):\n")
    for key, r in results.items():
        md.append(f"- {key}: " + ", ".join(f"{c['seconds']:.0f} s: {c['psnr_denoised']:.2f}" for c in r["curve"]))
    text = "\n".join(md)
    print(text)
    rb.write("denoising", {"command": rb.command(), "machine": info, "config": vars(args), "results": results}, text)


if __name__ == "__main__":
    main()
