"""Preprocessing recorded with a model: scaling, binarization and flattening.

A ``Preprocessing`` is a frozen, JSON-serialisable record (it is stored in the model's
``config.json``), so a loaded model transforms raw input exactly as during training. Order in
``apply``: scale (per-feature statistics fitted on the training split), then threshold
binarization, then flattening. Dynamic binarization (Salakhutdinov & Murray, "On the quantitative
analysis of deep belief networks", ICML 2008: resample x ~ Bernoulli(pixel) every time an image is
seen) is not done here but per batch by :func:`aekit.data.batches.batches`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from functools import cached_property

import torch
from torch import Tensor

from aekit.data.chunked import count_nonfinite, feature_mean, feature_range, feature_std
from aekit.errors import ConfigError, DataError

SCALES = ("none", "standardize", "minmax")
BINARIZE = ("none", "dynamic", "threshold")
_EPS = 1e-8  # a feature whose spread is below this (e.g. MNIST's constant border pixels) is left unscaled


@dataclass(frozen=True)
class Preprocessing:
    """How raw items of shape ``input_shape`` become model inputs of shape ``output_shape``.

    ``mean``/``std`` hold per-feature statistics once fitted: mean and standard deviation for
    ``standardize``, minimum and range (max - min) for ``minmax``.
    """

    input_shape: tuple[int, ...]  # raw per-item shape, e.g. (1, 28, 28) or (D,)
    flatten: bool = True
    scale: str = "none"  # "none" | "standardize" | "minmax"
    binarize: str = "none"  # "none" | "dynamic" (per batch, by the batch iterator) | "threshold" (x > 0.5)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        # Accept lists (as JSON gives them back) but store tuples, so the record stays hashable.
        try:
            shape = tuple(int(d) for d in self.input_shape)
        except (TypeError, ValueError):
            shape = ()
        if not shape or any(d < 1 for d in shape) or any(isinstance(d, bool) for d in self.input_shape):
            raise ConfigError(
                f"Preprocessing input_shape={self.input_shape!r} is invalid; "
                "expected a non-empty tuple of positive ints."
            )
        object.__setattr__(self, "input_shape", shape)
        if not isinstance(self.flatten, bool):
            raise ConfigError(f"Preprocessing flatten={self.flatten!r} is invalid; expected True or False.")
        if self.scale not in SCALES:
            raise ConfigError(f"Preprocessing scale={self.scale!r} is unknown; expected one of {list(SCALES)}.")
        if self.binarize not in BINARIZE:
            raise ConfigError(f"Preprocessing binarize={self.binarize!r} is unknown; expected one of {list(BINARIZE)}.")
        if self.binarize != "none" and self.scale == "standardize":
            raise ConfigError(
                f"Preprocessing binarize={self.binarize!r} with scale='standardize' is invalid; "
                "expected scale 'none' or 'minmax', "
                "since binarization needs values in [0, 1]."
            )
        if (self.mean is None) != (self.std is None):
            raise ConfigError("Preprocessing has only one of mean and std; expected both or neither.")
        if self.mean is not None:
            n = math.prod(shape)
            for name in ("mean", "std"):
                values = tuple(float(v) for v in getattr(self, name))
                if len(values) != n or not all(math.isfinite(v) for v in values):
                    raise ConfigError(
                        f"Preprocessing {name} has {len(values)} values; "
                        f"expected {n} finite values, one per feature."
                    )
                object.__setattr__(self, name, values)

    # ------------------------------------------------------------------------------------ shapes

    @property
    def num_features(self) -> int:
        return math.prod(self.input_shape)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per-item shape after ``apply``: ``(D,)`` when flattening, else ``input_shape``."""
        return (self.num_features,) if self.flatten else self.input_shape

    @property
    def is_fitted(self) -> bool:
        return self.scale == "none" or self.mean is not None

    def _check(self, x: Tensor, shapes: tuple[tuple[int, ...], ...], what: str) -> None:
        if not isinstance(x, Tensor) or tuple(x.shape[1:]) not in shapes or x.ndim < 2:
            got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            expected = " or ".join(str(("N", *s)) for s in shapes)
            raise DataError(f"{what} got input of shape {got}; expected {expected}.")

    # ----------------------------------------------------------------------------------- fitting

    def fit(self, x: Tensor) -> "Preprocessing":
        """A copy with per-feature statistics of ``x`` (N, *input_shape) for the chosen scaling."""
        self._check(x, (self.input_shape, (self.num_features,)), "Preprocessing.fit")
        if self.scale == "none":
            return replace(self, mean=None, std=None)
        x = x.detach()
        if x.shape[0] == 0:
            raise DataError("Preprocessing.fit got no rows; expected training data to fit the scaling on.")
        if count_nonfinite(x, allow_nan=True):
            raise DataError("Preprocessing.fit got infinite values; expected finite training data (NaN marks a "
                            "missing value).")
        missing = count_nonfinite(x) > 0   # NaN: missing values, left out of the statistics
        # (D,) statistics of the (N, D) rows, summed in float64 a block of rows at a time (no copy of x)
        if self.scale == "standardize":
            center = feature_mean(x, ignore_nan=missing)
            spread = feature_std(x, center, ignore_nan=missing)
        else:
            lo, hi = feature_range(x, ignore_nan=missing)
            center, spread = lo, hi - lo
        if missing and not bool(torch.isfinite(center).all()):
            unseen = int((~torch.isfinite(center)).sum())
            raise DataError(f"Preprocessing.fit got {unseen} feature(s) missing (NaN) in every training row; "
                            "expected at least one observed value per feature to scale it.")
        spread = torch.where(spread < _EPS, torch.ones_like(spread), spread)  # constant features: shift only
        return replace(self, mean=tuple(center.tolist()), std=tuple(spread.tolist()))

    @cached_property
    def _stats(self) -> tuple[Tensor, Tensor]:
        # (D,) float32 tensors built once per instance (cached_property writes to __dict__,
        # which a frozen dataclass allows).
        return torch.tensor(self.mean, dtype=torch.float32), torch.tensor(self.std, dtype=torch.float32)

    def _stats_on(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, std = self._stats
        return mean.to(device=x.device, dtype=x.dtype), std.to(device=x.device, dtype=x.dtype)

    # ---------------------------------------------------------------------------------- applying

    def apply(self, x: Tensor) -> Tensor:
        """The deterministic transform: raw (N, *input_shape) or (N, D) -> (N, *output_shape) float."""
        self._check(x, (self.input_shape, (self.num_features,)), "Preprocessing.apply")
        if not self.is_fitted:
            raise ConfigError(
                f"Preprocessing with scale={self.scale!r} is not fitted; "
                "expected fit(x_train) to be called first."
            )
        n = x.shape[0]
        x = x if x.is_floating_point() else x.to(torch.float32)
        if self.scale == "none" and self.binarize != "threshold":  # nothing to compute: a view where the layout allows
            return x.reshape(n, -1) if self.flatten else x.reshape(n, *self.input_shape)
        flat = x.reshape(n, -1)  # (N, D)
        if self.scale != "none":
            mean, std = self._stats_on(flat)
            flat = (flat - mean) / std
            if self.binarize != "none":  # minmax on unseen data can leave [0, 1]; Bernoulli needs it
                flat = flat.clamp(0.0, 1.0)
        if self.binarize == "threshold":   # a missing value (NaN) stays missing
            flat = torch.where(flat.isnan(), flat, (flat > 0.5).to(flat.dtype))
        return flat if self.flatten else flat.reshape(n, *self.input_shape)

    def invert(self, x: Tensor) -> Tensor:
        """Back to raw scale and shape: (N, *output_shape) -> (N, *input_shape) (binarization is not undone)."""
        self._check(x, (self.output_shape, (self.num_features,)), "Preprocessing.invert")
        if not self.is_fitted:
            raise ConfigError(
                f"Preprocessing with scale={self.scale!r} is not fitted; "
                "expected fit(x_train) to be called first."
            )
        n = x.shape[0]
        flat = x.reshape(n, -1)  # (N, D)
        if self.scale != "none":
            mean, std = self._stats_on(flat)
            flat = flat * std + mean
        return flat.reshape(n, *self.input_shape)

    # ----------------------------------------------------------------------------- serialisation

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (tuples become lists)."""
        d = asdict(self)
        for key in ("input_shape", "mean", "std"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        """Rebuild from ``to_dict`` output; unknown keys raise ConfigError."""
        if not isinstance(d, dict):
            raise ConfigError(f"Preprocessing config is a {type(d).__name__}; expected a dict.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"Preprocessing config has unknown keys {unknown}; expected only {sorted(known)}.")
        if "input_shape" not in d:
            raise ConfigError("Preprocessing config has no 'input_shape'; expected the raw per-item shape.")
        return cls(**d)
