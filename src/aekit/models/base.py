"""The model contract every aekit model follows (see DESIGN.md, "The model contract").

``encode`` -> latent parameters, ``embed`` -> deterministic code, ``decode`` -> output distribution,
``forward`` -> everything the loss needs, ``loss`` -> LossOutput(total, terms). Capability flags are
class attributes that the trainer, the CLI and the evaluators ask instead of a model's name.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import ModelConfig
from ..data.chunked import count_nonfinite, feature_mean, value_range
from ..errors import AekitError, ConfigError, DataError
from ..nn import UNIT_INTERVAL_LIKELIHOODS, Decoder, DecoderOutput, OutputHead


@dataclass
class LossOutput:
    """``total`` is the scalar to minimise; ``terms`` are detached scalars logged under their names."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class PointLatent:
    """A deterministic code z, (N, D)."""

    z: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        return self.z


@dataclass
class GaussianLatent:
    """q(z|x) = N(mean, diag exp(logvar)); both (N, D)."""

    mean: torch.Tensor
    logvar: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)


class Autoencoder(nn.Module, metaclass=abc.ABCMeta):
    """Base class: holds the config and the recorded preprocessing; subclasses implement the maths."""

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    is_generative: ClassVar[bool] = False
    is_conditional: ClassVar[bool] = False
    uses_labels: ClassVar[bool] = False
    has_likelihood: ClassVar[bool] = False

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise AekitError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}."
            )
        self.config = config
        # Preprocessing (aekit.data.Preprocessing) recorded with the model; set by whoever trains it.
        self.preprocessing: Any = None
        # Optimizer steps taken; a buffer so schedules (KL warm-up, capacity) survive save/resume
        # and advance without a host sync.
        self.register_buffer("train_step", torch.zeros((), dtype=torch.long))

    # -- contract -------------------------------------------------------------------------------
    @abc.abstractmethod
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Any:
        """The latent parameters of q(z|x) (or the code) as a latent dataclass."""

    @abc.abstractmethod
    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> DecoderOutput:
        """The decoder's output distribution p(x|z)."""

    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The deterministic code: the posterior mean or the code vector, (N, latent_dim)."""
        return self.encode(x, y).mean

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder mean at the deterministic code, (N, *input_shape)."""
        return self.decode(self.embed(x, y), y).mean()

    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        raise AekitError(f"{type(self).__name__} is not a generative model and cannot sample.")

    def input_item_shapes(self) -> list[tuple[int, ...]]:
        """The shapes one input item may have (an MLP flattens, so only their sizes must match)."""
        return [tuple(self.config.input_shape)]

    @torch.no_grad()
    def check_inputs(self, x: Any, y: Any = None, *, name: str = "x", binarize: bool = False) -> None:
        """Refuse, in one sentence (DataError), inputs this model cannot use: not a floating-point tensor
        of the weights' dtype, no rows, items that do not fit ``input_shape``, NaN or infinite values,
        values outside [0, 1] for a [0, 1] decoder or dynamic binarization, labels of another length."""
        if not isinstance(x, torch.Tensor):
            raise DataError(f"{name} must be a torch.Tensor, got {type(x).__name__}; convert it with "
                            "torch.as_tensor(..., dtype=torch.float32).")
        weights = next((p.dtype for p in self.parameters() if p.is_floating_point()), torch.float32)
        if x.dtype != weights:
            raise DataError(f"{name} has dtype {x.dtype}; the model's weights are {weights} (use {name}.to({weights})).")
        shapes, items = self.input_item_shapes(), tuple(x.shape[1:])
        conv = getattr(self.config, "architecture", "mlp") == "conv"
        fits = any(items == s if conv else math.prod(items) == math.prod(s) for s in shapes)
        if x.dim() < 2 or not fits:
            want = " or ".join(f"(N, {', '.join(map(str, s))})" for s in shapes)
            raise DataError(f"{name} has shape {tuple(x.shape)}; the model takes {want}.")
        if x.shape[0] == 0:
            raise DataError(f"{name} has no rows.")
        missing = bool(getattr(self.config, "missing_values", False))   # NaN marks a missing value
        bad = count_nonfinite(x, allow_nan=missing)  # a block of rows at a time: x may be memory-mapped
        if bad:
            what = "infinite" if missing else "NaN or infinite"
            raise DataError(f"{name} has {bad} {what} values; expected only finite numbers"
                            + (" (missing_values=True takes NaN as a missing value)."
                               if hasattr(self.config, "missing_values") and not missing else "."))
        if missing and binarize and count_nonfinite(x):
            raise DataError(f"{name} has missing values (NaN), which dynamic binarization cannot draw; binarize "
                            "the observed values beforehand.")
        likelihood = getattr(self.config, "likelihood", None)
        if binarize or likelihood in UNIT_INTERVAL_LIKELIHOODS:
            lo, hi = value_range(x, ignore_nan=missing)
            if lo < 0 or hi > 1:
                need = "dynamic binarization" if binarize else f"likelihood={likelihood!r}"
                raise DataError(f"{need} needs {name} in [0, 1], but it spans [{lo:.3g}, {hi:.3g}]; "
                                "scale the data or use a Gaussian decoder.")
        if y is not None and (not isinstance(y, torch.Tensor) or y.dim() < 1 or y.shape[0] != x.shape[0]):
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise DataError(f"The labels of {name} must be a tensor with one row per input ({x.shape[0]}); got {got}.")

    def init_from_data(self, x: torch.Tensor) -> None:
        """Data-dependent initialization before the first training step; the trainer calls it on a
        model that has taken no step. With ``config.output_bias == "data"`` the decoder's output bias
        is set so that p(x|z) starts at the training data's mean (the decoder of p(x|.), the one
        module of this model that is a ``Decoder`` with an ``OutputHead``)."""
        if getattr(self.config, "output_bias", "zero") != "data":
            return
        decoders = [m for m in self.modules() if isinstance(m, Decoder)]
        heads = [m for m in self.modules() if isinstance(m, OutputHead)]
        if len(decoders) != 1 or len(heads) != 1:
            raise ConfigError(f"output_bias='data' needs a model with one likelihood decoder; "
                              f"{type(self).__name__} has {len(decoders)}; use output_bias='zero'.")
        mean = feature_mean(x, ignore_nan=bool(getattr(self.config, "missing_values", False)))
        mean = mean.nan_to_num(0.5).float().reshape(decoders[0].input_shape)   # 0.5: a feature never observed
        decoders[0].set_output_bias(heads[0].raw_for_mean(mean))

    def on_train_step(self) -> None:
        """Called by the trainer after every optimizer step."""
        self.train_step += 1

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    # -- saving ---------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, **extra: Any) -> Path:
        from ..io import save_pretrained

        return save_pretrained(self, directory, **extra)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "Autoencoder":
        from ..io import from_pretrained

        model = from_pretrained(directory)
        if not isinstance(model, cls):
            raise AekitError(f"{directory} holds a {type(model).__name__}, not a {cls.__name__}.")
        return model


def one_hot(y: torch.Tensor | None, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    """Integer labels (N,) -> one-hot (N, C); a float (N, C) condition passes through unchanged."""
    if y is None:
        return None
    if y.dim() == 2:
        return y.to(dtype)
    return torch.nn.functional.one_hot(y.long(), num_classes).to(dtype)
