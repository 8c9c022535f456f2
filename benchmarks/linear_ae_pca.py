"""Linear autoencoder vs PCA on MNIST (Baldi & Hornik 1989).

MNIST pixels in [0, 1], 50k train / 10k test (the last 10k training images held out as validation,
as in Sainburg et al. 2021, whose PCA test MSEs 0.0557 (d = 2) and 0.0090 (d = 64) are the
published values). For each d: PCA fitted on the 50k training images; ``linear_ae`` (no
nonlinearity, squared error, biases) trained with Adam; both scored by the test MSE per pixel, and
the principal angles between the AE decoder's column space and PCA's top-d subspace. The test MSE
after every epoch and the wall-clock time give the time-to-accuracy curve.

    nice -n 10 python benchmarks/linear_ae_pca.py            # d = 2 and 64, 30 epochs each
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

import _regbench as rb  # noqa: E402
from aekit import registry  # noqa: E402
from aekit.config import TrainConfig  # noqa: E402
from aekit.train import fit  # noqa: E402

PUBLISHED_PCA = {2: 0.0557, 64: 0.0090}


def pca(x: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and the top-d principal directions (D, d) of x (N, D), in float64."""
    xd = x.double()
    mean = xd.mean(0)
    cov = (xd - mean).T @ (xd - mean) / xd.shape[0]
    _, vecs = torch.linalg.eigh(cov)                       # ascending eigenvalues
    return mean, vecs[:, -d:].flip(1)


def principal_angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.linalg import subspace_angles

    return np.degrees(subspace_angles(a, b))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, nargs="+", default=[2, 64])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    info = rb.machine(args.threads)
    md = [rb.header("Linear autoencoder vs PCA on MNIST", info)]
    data = rb.load("mnist")
    x, xt = data.train.x.reshape(-1, 784), data.test.x.reshape(-1, 784)
    rows, runs = [], {}
    for d in args.dims:
        t0 = time.perf_counter()
        mean, v = pca(x, d)
        pca_rec = ((xt.double() - mean) @ v @ v.T + mean).float()
        pca_mse = float((pca_rec - xt).pow(2).mean())
        pca_seconds = time.perf_counter() - t0
        torch.manual_seed(args.seed)
        model = registry.build("linear_ae", {"input_shape": [784], "latent_dim": d})
        curve = []
        start = time.perf_counter()

        def on_epoch(row, model=model, curve=curve, start=start):
            with torch.no_grad():
                mse = float((model.reconstruct(xt) - xt).pow(2).mean())
            curve.append({"epoch": int(row["epoch"]), "seconds": round(time.perf_counter() - start, 2), "test_mse": mse})
            print(f"d={d} epoch {int(row['epoch'])}: test MSE {mse:.5f} (PCA {pca_mse:.5f}) {curve[-1]['seconds']:.0f}s", flush=True)

        tc = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule="cosine",
                         seed=args.seed, progress=False)
        result = fit(model, x, config=tc, on_epoch_end=on_epoch)
        with torch.no_grad():
            ae_mse = float((model.reconstruct(xt) - xt).pow(2).mean())
        angles = principal_angles_deg(model.decoder.mlp[0].weight.detach().double().numpy(), v.numpy())
        params = sum(q.numel() for q in model.parameters())
        floor = rb.mlp_epoch_floor(params, x.shape[0], info["gemm_gflops"])
        within = next((c for c in curve if c["test_mse"] <= 1.01 * pca_mse), None)
        runs[d] = {
            "pca_test_mse": pca_mse, "published_pca_test_mse": PUBLISHED_PCA.get(d), "pca_seconds": pca_seconds,
            "linear_ae_test_mse": ae_mse, "ratio_to_pca": ae_mse / pca_mse,
            "principal_angles_deg_max": float(angles.max()), "principal_angles_deg_mean": float(angles.mean()),
            "train_seconds": result.seconds, "epoch_seconds_mean": result.seconds / max(1, result.epochs_run),
            "epoch_flop_floor_seconds": floor, "first_epoch_within_1pct": within, "curve": curve,
        }
        rows.append([d, PUBLISHED_PCA.get(d), f"{pca_mse:.5f}", f"{ae_mse:.5f}", f"{ae_mse / pca_mse:.4f}", float(angles.max()), float(angles.mean()),
                     f"{result.seconds:.0f} s ({result.seconds / result.epochs_run:.2f} s/epoch; floor {floor:.2f} s)",
                     f"epoch {within['epoch']}, {within['seconds']:.0f} s" if within else "not reached"])
    md.append(f"Schedule: Adam lr {args.lr}, cosine decay, batch {args.batch_size}, {args.epochs} epochs per d, seed {args.seed} "
              "(the Baldi–Hornik optimum needs no paper schedule: it is PCA's subspace).\n")
    md.append(rb.table(rows, ["d", "published PCA test MSE", "our PCA test MSE", "linear AE test MSE", "AE / PCA",
                              "max principal angle (deg)", "mean principal angle (deg)", "AE training time",
                              "time to within 1% of PCA"]))
    md.append("\nThe decoder's columns span the principal subspace up to an invertible d x d map (Baldi & Hornik 1989); "
              "the angles measure how far the learned subspace is from PCA's. Angles for the last directions are large "
              "where neighbouring eigenvalues are nearly equal: the reconstruction error barely depends on those directions.")
    md.append("\nTime-to-accuracy (test MSE after each epoch):\n")
    for d, r in runs.items():
        md.append(f"- d = {d}: " + ", ".join(f"{c['seconds']:.0f} s: {c['test_mse']:.5f}" for c in r["curve"]))
    text = "\n".join(md)
    print(text)
    rb.write("linear_ae_pca", {"command": rb.command(), "machine": info, "config": vars(args), "results": runs}, text)


if __name__ == "__main__":
    main()
