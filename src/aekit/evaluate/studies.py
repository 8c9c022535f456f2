"""Studies that train several models and compare them.

- ``latent_dim_study``: Kingma & Welling 2013, Fig. 2 — train one variational model per latent size
  N_z and plot the test ELBO and the importance-sampled log-likelihood against N_z. With enough
  data, extra dimensions cost nothing: the unused ones collapse to the prior (KL 0, inactive), which
  the active-unit count of Burda et al. 2015 shows.
- ``latent_space_study``: a plain AE and a VAE of the same shape on the same data, with the
  latent-space diagnostics of aekit.evaluate.diagnostics side by side, their scatter plots and the
  decodings of the same N(0, I) draws through both.

Both write into ``out_dir``: one run folder per model (checkpoints, metrics.csv), results.json,
results.md and the figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .. import plots, registry
from ..config import TrainConfig
from ..errors import ConfigError, DataError
from ..io import atomic_write, atomic_write_text
from . import diagnostics
from .latent import active_units
from .likelihood import density_report

LATENT_DIMS = (2, 5, 10, 20, 50)


def _inputs(data: Any, binarize: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Train and test inputs (test binarized once, seed 0, for dynamically binarized training) and labels."""
    test = data.test or data.val
    if test is None:
        raise DataError(f"The data set {data.name!r} has neither a test nor a validation split to evaluate on.")
    if binarize:
        for split in (data.train, test):
            if split.x.min() < 0 or split.x.max() > 1:
                raise DataError(f"Dynamic binarization draws each value as a Bernoulli probability, but {data.name!r} "
                                f"spans [{float(split.x.min()):.3g}, {float(split.x.max()):.3g}]; turn it off (--binarize none) "
                                "or scale the data to [0, 1].")
    x_test = torch.bernoulli(test.x, generator=torch.Generator().manual_seed(0)) if binarize else test.x
    return data.train.x, x_test, data.train.y, test.y


def _build(name: str, data: Any, options: dict[str, Any], binarize: bool, seed: int) -> Any:
    from ..data import Preprocessing

    model_cls, config_cls = registry.get(name)
    opts = {"input_shape": list(data.shape), **options}
    if "num_classes" in config_cls.__dataclass_fields__ and data.num_classes and "num_classes" not in opts:
        opts["num_classes"] = data.num_classes
    torch.manual_seed(seed)  # the initial weights come from the seed, whatever ran before
    model = model_cls(config_cls.from_dict(opts))
    model.preprocessing = Preprocessing(input_shape=tuple(data.shape), flatten=False,
                                        binarize="dynamic" if binarize else "none")
    return model


def _fit(model: Any, x: torch.Tensor, y: torch.Tensor | None, tc: TrainConfig, run: Path, binarize: bool,
         log: Callable[[str], None]) -> float:
    from ..train import fit

    torch.manual_seed(tc.seed)
    t0 = time.perf_counter()
    fit(model, x, y, config=tc, run_dir=run, binarize=binarize,
        on_epoch_end=lambda r: log(f"  epoch {int(r['epoch'])}: loss {r['train_loss']:.3f} ({r['seconds']:.1f}s)"))
    return time.perf_counter() - t0


def latent_dim_study(
    data: Any, dims: Sequence[int] = LATENT_DIMS, *, model: str = "vae", model_options: dict[str, Any] | None = None,
    train_config: TrainConfig = TrainConfig(), k: int = 1000, binarize: bool = True, eval_n: int = 0,
    out_dir: str | Path = "runs/study-latent-dim", log: Callable[[str], None] = print,
) -> list[dict[str, float]]:
    """Train ``model`` for every N_z in ``dims``; return one row of test metrics per N_z."""
    model_cls, _ = registry.get(model)
    if not model_cls.has_likelihood:
        raise ConfigError(f"The latent-dimension study needs a model with a likelihood; {model!r} has none.")
    if not hasattr(model_cls, "log_importance_weights"):   # the VQ-VAE: codes, not a Gaussian latent of N_z units
        raise ConfigError(f"The latent-dimension study compares Gaussian latents of N_z units (their ELBO, "
                          f"log-likelihood and active units); {model!r} has a point-mass q(z|x) and no such units.")
    if not dims or any(int(d) < 1 for d in dims):
        raise ConfigError(f"dims={list(dims)!r} must be positive latent sizes.")
    if len({int(d) for d in dims}) != len(dims):
        raise ConfigError(f"dims={list(dims)!r} names a latent size twice; give each once.")
    out = Path(out_dir)
    if (out / "results.json").exists():
        raise ConfigError(f"{str(out)!r} already holds a study (results.json); choose another folder.")
    taken = [f"nz{d}" for d in dims if (out / f"nz{d}" / "metrics.csv").exists()]
    if taken:
        raise ConfigError(f"{str(out / taken[0])!r} already holds a run of an earlier study; choose another folder.")
    x, x_test, y, y_test = _inputs(data, binarize)
    if eval_n:
        x_test, y_test = x_test[:eval_n], (None if y_test is None else y_test[:eval_n])
    rows = []
    for d in dims:
        m = _build(model, data, {**(model_options or {}), "latent_dim": int(d)}, binarize, train_config.seed)
        log(f"N_z = {d}: training {model} on {data.name} ({x.shape[0]} images, {train_config.epochs} epochs)")
        cond = m.is_conditional or m.uses_labels
        seconds = _fit(m, x, y if cond else None, train_config, out / f"nz{d}", binarize, log)
        rep = density_report(m, x_test, y_test if cond else None, k=k)
        row = {"latent_dim": int(d), **rep, "active_units": active_units(m, x_test, y_test if cond else None).count,
               "train_seconds": seconds}
        log(f"N_z = {d}: test ELBO {rep['elbo']:.2f}" + (f", log p(x) {rep['log_likelihood']:.2f} (k={k})" if k else "")
            + f", {row['active_units']} active units")
        rows.append(row)
    _plot_latent_dims(rows, out / "latent_dim.png", data.name, k)
    meta = {"model": model, "data": data.name, "model_options": model_options or {}, "train_config": train_config.to_dict(),
            "k": k, "binarize": binarize, "n_test": int(x_test.shape[0]), "rows": rows}
    atomic_write_text(out / "results.json", json.dumps(meta, indent=2) + "\n")
    lines = [f"# Test ELBO and log-likelihood against N_z ({model} on {data.name})\n",
             f"{train_config.epochs} epochs per model; log p(x) from k = {k} importance samples; "
             f"{int(x_test.shape[0])} test items. Kingma & Welling 2013, Fig. 2, plot the training bound instead.\n",
             "| N_z | test ELBO | E log p(x\\|z) | KL | log p(x) | active units | train time |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        ll = f"{r['log_likelihood']:.2f}" if "log_likelihood" in r else "-"
        lines.append(f"| {r['latent_dim']} | {r['elbo']:.2f} | {r['log_px_given_z']:.2f} | {r['kl']:.2f} | {ll} | "
                     f"{r['active_units']} | {r['train_seconds']:.0f} s |")
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    return rows


def _plot_latent_dims(rows: list[dict[str, float]], path: Path, data_name: str, k: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    nz = [r["latent_dim"] for r in rows]
    ax.plot(nz, [r["elbo"] for r in rows], "o-", label="test ELBO")
    if all("log_likelihood" in r for r in rows):
        ax.plot(nz, [r["log_likelihood"] for r in rows], "s-", label=f"test log p(x), k = {k}")
    ax.set_xscale("log")
    ax.set_xticks(nz)
    ax.set_xticklabels([str(n) for n in nz])
    ax.set_xlabel("latent dimensions N_z")
    ax.set_ylabel("nats per item")
    ax.set_title(f"{data_name}: bound against latent size")
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)
    return path


def latent_space_study(
    data: Any, *, latent_dim: int = 2, hidden_dims: Sequence[int] = (512, 256), activation: str = "relu",
    train_config: TrainConfig = TrainConfig(), binarize: bool = True, eval_n: int = 0,
    out_dir: str | Path = "runs/study-latent-space", log: Callable[[str], None] = print,
) -> dict[str, dict[str, float]]:
    """Train an AE and a VAE of the same shape; return their latent diagnostics on the test split."""
    out = Path(out_dir)
    if (out / "results.json").exists():
        raise ConfigError(f"{str(out)!r} already holds a study (results.json); choose another folder.")
    x, x_test, _, y_test = _inputs(data, binarize)
    if eval_n:
        x_test, y_test = x_test[:eval_n], (None if y_test is None else y_test[:eval_n])
    likelihood = "bernoulli" if (binarize or data.is_binary) else "gaussian"
    shared = {"latent_dim": latent_dim, "hidden_dims": list(hidden_dims), "activation": activation, "likelihood": likelihood}
    models, panels, results = {}, {}, {}
    gen = torch.Generator().manual_seed(train_config.seed)
    for name in ("ae", "vae"):
        m = _build(name, data, shared, binarize, train_config.seed)
        log(f"{name}: training on {data.name} ({x.shape[0]} items, {train_config.epochs} epochs)")
        seconds = _fit(m, x, None, train_config, out / name, binarize, log)
        m.eval()
        draws = diagnostics.encoded_draws(m, x_test, generator=gen)
        results[name] = {**diagnostics.latent_diagnostics(draws, y_test, seed=train_config.seed), "train_seconds": seconds}
        with torch.no_grad():
            panels[name.upper()] = (m.embed(x_test), y_test)
        models[name] = m
    diagnostics.save_scatter_panels(panels, out / "latent_scatter.png", data.class_names)
    _save_prior_decodings(models, out / "prior_decodings.png", latent_dim, gen)
    atomic_write_text(out / "results.json", json.dumps({"data": data.name, "shared_options": shared,
                                                         "train_config": train_config.to_dict(), "diagnostics": results},
                                                        indent=2) + "\n")
    keys = [("centre_offset", "distance of the code mean from 0, in units of the codes' spread"),
            ("asymmetry", "mean |skewness| over dimensions"),
            ("class_area_ratio", "largest / smallest class area det(Cov_c)^(1/D)"),
            ("prior_hole_fraction", "N(0, I) draws whose 10 nearest neighbours among as many codes and draws are all draws"),
            ("fitted_hole_fraction", "the same for draws from a Gaussian fitted to the codes"),
            ("spread", "sqrt(tr Cov / D) of the codes")]
    lines = [f"# Latent space of an AE and a VAE ({data.name}, N_z = {latent_dim})\n",
             f"Both {list(hidden_dims)} {activation}, {likelihood} decoder, {train_config.epochs} epochs; "
             f"codes of {int(x_test.shape[0])} test items (the VAE's drawn from q(z|x)).\n",
             "| measure | AE | VAE | meaning |", "|---|---|---|---|"]
    for key, meaning in keys:
        vals = [results[n].get(key) for n in ("ae", "vae")]
        cells = ["-" if v is None else f"{v:.3g}" for v in vals]
        lines.append(f"| {key} | {cells[0]} | {cells[1]} | {meaning} |")
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    return results


@torch.no_grad()
def _save_prior_decodings(models: dict[str, Any], path: Path, latent_dim: int, gen: torch.Generator, n: int = 16) -> Path | None:
    """The same N(0, I) draws decoded by every model: one row per model."""
    z = torch.randn(n, latent_dim, generator=gen)
    rows = []
    for m in models.values():
        dec = m.decode(z).mean()
        pre = getattr(m, "preprocessing", None)
        img = plots.as_images(pre.invert(dec) if pre is not None else dec, tuple(pre.input_shape) if pre else None)
        if img is None:
            return None
        rows.append(img)
    title = " / ".join(n.upper() for n in models) + f": the same {n} draws from N(0, I), one row per model"
    return plots.show(plots.image_grid(rows), path, title)
