"""Semi-supervised learning with deep generative models: M1, M2 and M1+M2 (Kingma, Rezende, Mohamed &
Welling 2014, "Semi-supervised Learning with Deep Generative Models").

- M1: a VAE trained on all inputs (no labels); its posterior means E[z1|x] are the features of any
  scikit-learn classifier fitted on the labelled rows (``aekit.semi_sklearn.M1Classifier``; the paper
  used a transductive SVM, the default here is an RBF ``SVC``). Any model with a Gaussian posterior
  q(z1|x) and no labels can be M1: a ``VAE`` (the paper) or an ``IWAE``, trained with the
  importance-weighted bound, whose posterior keeps more latent dimensions active.
- M2: the generative semi-supervised model ``aekit.models.ssvae.M2`` (registry name ``m2``).
- M1+M2: M2 trained on M1's latent codes. As in the authors' code, dimensions of z1 whose posterior
  mean hardly varies over the data (std < 0.1: inactive units) are dropped, and each training pass draws
  a fresh z1 ~ q(z1|x) (``M2Config.input_noise='gaussian'``); prediction uses the posterior mean.

Labels follow the scikit-learn convention: ``-1`` marks an unlabelled row. ``labelled_subset`` draws a
class-balanced labelled subset of N rows with a seed; ``oversample_labelled`` repeats the labelled rows
so that the trainer's uniformly shuffled batches hold some in almost every batch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .config import TrainConfig
from .errors import CheckpointError, ConfigError, DataError
from .models.iwae import IWAE, IWAEConfig
from .models.ssvae import M2, M2Config
from .models.vae import VAE, VAEConfig
from .nn import model_device

M1Model = VAE | IWAE                 # the models that can be M1: Gaussian q(z1|x), no labels
M1_CONFIGS = (VAEConfig, IWAEConfig)

STACK_NAME = "stack.json"
DEFAULT_LABELLED_FRACTION = 0.1   # share of the rows the repeated labelled rows make up (oversample_labelled)


# -- labels -------------------------------------------------------------------------------------
def labelled_subset(y: Any, n_labels: int, seed: int = 0) -> Any:
    """Keep ``n_labels`` labels, the same number from each class, and set every other label to -1.

    ``y``: integer labels (N,) as a torch tensor or numpy array (rows already -1 stay unlabelled);
    the result has the same type (a tensor: int64; an array: its dtype unless that is unsigned, as
    MNIST's uint8 labels are, which cannot hold -1: then int64). Classes are those present in ``y``; when ``n_labels`` is not a
    multiple of their number, the remainder goes to classes chosen at random. The draw depends only
    on ``seed`` (a torch.Generator), so the same seed gives the same subset everywhere.
    """
    is_numpy = not isinstance(y, torch.Tensor)
    t = torch.as_tensor(np.asarray(y) if is_numpy else y).long().cpu()
    if t.dim() != 1:
        raise DataError(f"Labels must have shape (N,) to draw a labelled subset, got {tuple(t.shape)}.")
    if isinstance(n_labels, bool) or not isinstance(n_labels, (int, np.integer)) or n_labels < 1:
        raise ConfigError(f"n_labels={n_labels!r} must be a positive integer.")
    classes = torch.unique(t[t >= 0])
    k = classes.numel()
    if k == 0:
        raise DataError("No labelled rows to draw a labelled subset from (every label is -1).")
    if n_labels < k:
        raise ConfigError(f"n_labels={n_labels} is fewer than the {k} classes; a balanced subset needs at least one per class.")
    gen = torch.Generator().manual_seed(int(seed))
    per_class = torch.full((k,), n_labels // k, dtype=torch.long)
    per_class[torch.randperm(k, generator=gen)[: n_labels % k]] += 1
    keep = []
    for c, m in zip(classes.tolist(), per_class.tolist()):
        idx = (t == c).nonzero().squeeze(1)
        if idx.numel() < m:
            raise DataError(f"{n_labels} balanced labels need {m} examples of class {c}, but the data has {idx.numel()}; "
                            "ask for fewer labels.")
        keep.append(idx[torch.randperm(idx.numel(), generator=gen)[:m]])
    out = torch.full_like(t, -1)
    kept = torch.cat(keep)
    out[kept] = t[kept]
    if is_numpy:
        dtype = np.asarray(y).dtype
        return out.numpy().astype(np.int64 if dtype.kind in "ub" else dtype, copy=False)
    return out.to(y.device)   # int64


def oversample_labelled(x: torch.Tensor, y: torch.Tensor, labelled_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat the labelled rows (y >= 0) so that they make up about ``labelled_fraction`` of the rows.

    The trainer draws uniformly shuffled batches; with 100 labels among 50,000 rows most batches
    would hold none. Repeating them r = round(f N_u / ((1 - f) N_l)) times puts about f B labelled
    rows in a batch of B. M2's classification term is a mean over a batch's labelled rows, so its
    weight does not change (see aekit.models.ssvae). Nothing is repeated when every row is labelled,
    none is, or they already make up the fraction. Returns new (x, y), the copies appended at the end.
    """
    if not 0.0 < labelled_fraction < 1.0:
        raise ConfigError(f"labelled_fraction={labelled_fraction!r} must be a fraction in (0, 1).")
    if y.shape[0] != x.shape[0]:
        raise DataError(f"oversample_labelled got {x.shape[0]} inputs and {y.shape[0]} labels; expected one label per input.")
    lab = (y >= 0).nonzero().squeeze(1)
    n_l, n_u = lab.numel(), y.shape[0] - lab.numel()
    if n_l == 0 or n_u == 0:
        return x, y
    r = round(labelled_fraction * n_u / ((1.0 - labelled_fraction) * n_l))
    if r <= 1:
        return x, y
    extra = lab.repeat(r - 1)
    return torch.cat([x, x.index_select(0, extra)]), torch.cat([y, y.index_select(0, extra)])


def semi_supervised_arrays(model: Any, x: torch.Tensor, y: torch.Tensor | None, n_labels: int, seed: int = 0,
                           labelled_fraction: float = DEFAULT_LABELLED_FRACTION) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``aekit train --labels N`` trains on: N balanced labels drawn with ``seed`` (-1 elsewhere),
    the labelled rows repeated to about ``labelled_fraction`` of the rows. Only for models that learn
    from partly labelled data (``uses_labels``)."""
    if not getattr(model, "uses_labels", False):
        raise ConfigError(
            f"labels={n_labels} asks for semi-supervised training, but {type(model).__name__} does not learn from "
            "labels; use a model such as m2."
        )
    if y is None:
        raise DataError(f"labels={n_labels} was given but the training data has no labels.")
    return oversample_labelled(x, labelled_subset(y, n_labels, seed), labelled_fraction)


def _check_labels(y: torch.Tensor, n: int, num_classes: int) -> torch.Tensor:
    y = torch.as_tensor(y).long()
    if y.shape != (n,):
        raise DataError(f"Expected {n} labels (one per row, -1 for unlabelled), got shape {tuple(y.shape)}.")
    if bool((y < -1).any()) or bool((y >= num_classes).any()):
        raise DataError(f"Labels must be -1 (unlabelled) or 0..{num_classes - 1}; got values from {int(y.min())} to {int(y.max())}.")
    if not bool((y >= 0).any()):
        raise DataError("No labelled rows: every label is -1; semi-supervised training needs some labels.")
    return y


# -- M1 -----------------------------------------------------------------------------------------
def default_m1_config(input_shape: tuple[int, ...], likelihood: str = "bernoulli", k: int = 1,
                      **changes: Any) -> VAEConfig | IWAEConfig:
    """The paper's M1: 2 x 600 softplus hidden layers, a 50-dimensional Gaussian latent, Bernoulli pixels.

    ``k`` > 1 trains the same network with the importance-weighted bound of k samples (an ``IWAEConfig``):
    its posterior keeps more latent dimensions active, which gives M2 better features to work with.
    """
    base = {"input_shape": tuple(input_shape), "latent_dim": 50, "hidden_dims": (600, 600),
            "activation": "softplus", "likelihood": likelihood}
    if k == 1:
        return VAEConfig.from_dict({**base, **changes})
    # The same network as the VAE M1, initialized the same way (PyTorch's default); only the bound differs.
    return IWAEConfig.from_dict({**base, "k": k, "objective": "iwae", "init": "default", **changes})


def fit_m1(x: torch.Tensor, *, config: VAEConfig | IWAEConfig | None = None, train_config: TrainConfig | None = None,
           val_x: torch.Tensor | None = None, binarize: bool | None = None,
           on_epoch_end: Callable[[dict[str, float]], None] | None = None) -> M1Model:
    """Train M1 (a VAE, or an IWAE when ``config`` is an ``IWAEConfig``; no labels) on ``x`` (N, *shape)
    with ``aekit.train.fit``; returns it in eval mode.

    ``binarize`` (default: for a Bernoulli decoder on data in [0, 1]) resamples the pixels of every
    batch from Bernoulli(x), as the authors trained M1 on MNIST.
    """
    from .train import fit

    config = config or default_m1_config(tuple(x.shape[1:]))
    if not isinstance(config, M1_CONFIGS):
        raise ConfigError(f"M1 needs a VAEConfig or an IWAEConfig, got {type(config).__name__}.")
    if binarize is None:
        binarize = config.likelihood == "bernoulli" and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    model = VAE(config) if isinstance(config, VAEConfig) else IWAE(config)
    fit(model, x, None, config=train_config or TrainConfig(epochs=50, batch_size=100), val_x=val_x,
        binarize=binarize, on_epoch_end=on_epoch_end)
    return model.eval()


@torch.no_grad()
def posterior_codes(m1: M1Model, x: torch.Tensor, dims: torch.Tensor | None = None, batch_size: int = 1000) -> torch.Tensor:
    """M1's posterior q(z1|x) as (N, 2, d): mean and log-variance of the kept ``dims`` (all by default)."""
    was = m1.training
    m1.eval()
    dev = model_device(m1)
    parts = []
    for i in range(0, x.shape[0], batch_size):
        lat = m1.encode(x[i: i + batch_size].to(dev))
        parts.append(torch.stack([lat.mean, lat.logvar], dim=1))     # (B, 2, D)
    m1.train(was)
    codes = torch.cat(parts)
    return codes if dims is None else codes.index_select(2, dims.to(codes.device))


@torch.no_grad()
def active_dims(m1: M1Model, x: torch.Tensor, threshold: float = 0.1, max_rows: int = 10_000) -> torch.Tensor:
    """Latent dimensions whose posterior mean varies over the data (std > ``threshold``), as the
    authors' code selects them (on the first ``max_rows`` rows); all of them if none pass."""
    means = posterior_codes(m1, x[:max_rows])[:, 0]
    keep = (means.std(0) > threshold).nonzero().squeeze(1)
    return keep if keep.numel() else torch.arange(means.shape[1])


# -- M2 -----------------------------------------------------------------------------------------
def fit_m2(x: torch.Tensor, y: torch.Tensor, *, config: M2Config | None = None, train_config: TrainConfig | None = None,
           labelled_fraction: float | None = 0.1, val_x: torch.Tensor | None = None,
           val_y: torch.Tensor | None = None, on_epoch_end: Callable[[dict[str, float]], None] | None = None,
           binarize: bool = False, model: M2 | None = None, run_dir: str | Path | None = None,
           resume: bool = False) -> M2:
    """Train M2 on ``x`` with labels ``y`` (-1 for unlabelled); returns it in eval mode.

    With every label known this is the supervised-only mode. ``labelled_fraction`` (None: off) sets
    how much of each batch the (repeated) labelled rows make up, see ``oversample_labelled``.
    ``binarize``: dynamic binarization of every batch. ``model``: an M2 to train further (else a
    new one is built from ``config``). ``run_dir`` / ``resume``: checkpoints and their continuation,
    as in ``aekit.train.fit`` (the labelled rows are repeated the same way in every sitting).
    """
    from .train import fit

    if model is None and config is None:
        raise ConfigError("fit_m2 needs an M2Config (config=) or an M2 to train further (model=).")
    model = model if model is not None else M2(config)
    y = _check_labels(y, x.shape[0], model.config.num_classes)
    if labelled_fraction is not None:
        x, y = oversample_labelled(x, y, labelled_fraction)
    fit(model, x, y, config=train_config or TrainConfig(epochs=50, batch_size=100), val_x=val_x, val_y=val_y,
        on_epoch_end=on_epoch_end, binarize=binarize, run_dir=run_dir, resume=resume)
    return model.eval()


def default_m2_codes_config(d: int, num_classes: int, **changes: Any) -> M2Config:
    """M2 over M1's codes: a Gaussian decoder with learned variances, posterior-sampled inputs."""
    base = {"input_shape": (d,), "num_classes": num_classes, "latent_dim": 50, "hidden_dims": (500,),
            "activation": "softplus", "likelihood": "gaussian", "decoder_variance": "learned",
            "input_noise": "gaussian"}
    return M2Config.from_dict({**base, **changes})


@dataclass
class M1M2:
    """The stacked model: M1 (a VAE or an IWAE on x) whose kept latent dimensions ``dims`` feed M2."""

    m1: M1Model
    dims: torch.Tensor
    m2: M2

    @torch.no_grad()
    def codes(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """(N, 2, d) posterior mean and log-variance of M1's kept dimensions."""
        return posterior_codes(self.m1, x, self.dims, batch_size)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """q(y | E[z1|x]) of M2, (N, C)."""
        self.m2.eval()
        dev = model_device(self.m2)
        c = self.codes(x, batch_size)
        return torch.cat([self.m2.predict_proba(c[i: i + batch_size].to(dev)).cpu() for i in range(0, c.shape[0], batch_size)])

    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        return self.predict_proba(x, batch_size).argmax(1)

    @torch.no_grad()
    def decode_pixels(self, z2: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x from the stack's generative model: M2's mean z1 given (z2, y), M1's inactive dimensions at 0
        (their prior mean), then M1's decoder mean; (N, *M1 input shape)."""
        self.m1.eval()
        self.m2.eval()
        z1_kept = self.m2.decode(z2, y).mean()                                   # (N, d)
        z1 = z1_kept.new_zeros(z2.shape[0], self.m1.config.latent_dim)
        z1[:, self.dims.to(z1.device)] = z1_kept
        return self.m1.decode(z1).mean()

    @torch.no_grad()
    def analogy_grids(self, x: torch.Tensor, y: torch.Tensor | None = None, n_styles: int = 10,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The analogies of Kingma et al. 2014 (Fig. 1) through both layers, as in
        aekit.evaluate.analogy.analogy_grids: (R, 1 + C, *shape) and (C, n_styles, *shape)."""
        from .evaluate.figures import styles_by_class

        dev = model_device(self.m2)
        codes = self.codes(x).to(dev)
        predicted = self.m2.predict(codes)
        labels = predicted if y is None else torch.where(y.to(dev) >= 0, y.to(dev), predicted)
        z2 = self.m2.embed(codes, labels)                                        # (R, D2) the styles
        k = self.m2.config.num_classes
        dec = styles_by_class(z2, k, self.decode_pixels).reshape(z2.shape[0], k, *x.shape[1:]).cpu()
        analogies = torch.cat([x.cpu().unsqueeze(1), dec], dim=1)
        z = torch.randn(n_styles, z2.shape[1], generator=generator).to(dev)
        styles = styles_by_class(z, k, self.decode_pixels).transpose(0, 1).cpu()  # (C, n_styles, ...)
        return analogies, styles.reshape(k, n_styles, *x.shape[1:])

    def save_pretrained(self, directory: str | Path) -> Path:
        """m1/ and m2/ as saved models (safetensors + config.json) and stack.json with the kept dims."""
        from .io import atomic_write_text

        directory = Path(directory)
        self.m1.save_pretrained(directory / "m1")
        self.m2.save_pretrained(directory / "m2")
        atomic_write_text(directory / STACK_NAME, json.dumps({"dims": self.dims.tolist()}) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "M1M2":
        from .io import from_pretrained

        path = Path(directory) / STACK_NAME
        if not path.is_file():
            raise CheckpointError(f"{str(directory)!r} holds no M1+M2 stack: it has no {STACK_NAME}.")
        try:
            dims = torch.tensor(json.loads(path.read_text())["dims"], dtype=torch.long)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{str(path)!r} is not a readable stack file ({type(exc).__name__}).") from None
        m1, m2 = from_pretrained(Path(directory) / "m1"), from_pretrained(Path(directory) / "m2")
        if not isinstance(m1, M1Model) or not isinstance(m2, M2):
            raise CheckpointError(f"{str(directory)!r} does not hold a VAE or IWAE in m1/ and an M2 in m2/.")
        return cls(m1, dims, m2)


def fit_m1_m2(x: torch.Tensor, y: torch.Tensor, *, num_classes: int | None = None, m1: M1Model | None = None,
              m1_config: VAEConfig | IWAEConfig | None = None, m1_train: TrainConfig | None = None,
              m2_options: dict[str, Any] | None = None, m2_train: TrainConfig | None = None,
              labelled_fraction: float | None = 0.1, val_x: torch.Tensor | None = None,
              val_y: torch.Tensor | None = None, binarize: bool | None = None,
              on_epoch_end: Callable[[dict[str, float]], None] | None = None) -> M1M2:
    """M1+M2: train M1 on every row of ``x`` (or use a trained ``m1``), then M2 on its codes.

    ``y`` has -1 for unlabelled rows; ``m2_options`` override fields of ``default_m2_codes_config``.
    """
    y = torch.as_tensor(y).long()
    k = int(num_classes or (int(y.max()) + 1))
    y = _check_labels(y, x.shape[0], k)   # before M1 is trained
    if m1 is None:
        m1 = fit_m1(x, config=m1_config, train_config=m1_train, binarize=binarize)
    m1.eval()
    dims = active_dims(m1, x)
    codes = posterior_codes(m1, x, dims)
    val_codes = posterior_codes(m1, val_x, dims) if val_x is not None else None
    config = default_m2_codes_config(int(dims.numel()), k, **(m2_options or {}))
    m2 = fit_m2(codes, y, config=config, train_config=m2_train, labelled_fraction=labelled_fraction,
                val_x=val_codes, val_y=val_y, on_epoch_end=on_epoch_end)
    return M1M2(m1, dims, m2)


def error_rate(pred: Any, y: Any) -> float:
    """Fraction of wrong predictions (the paper's test error, as a fraction)."""
    p, t = np.asarray(torch.as_tensor(pred).cpu()), np.asarray(torch.as_tensor(y).cpu())
    return float(np.mean(p != t)) if t.size else math.nan
