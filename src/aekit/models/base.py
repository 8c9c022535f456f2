"""The model contract every aekit model follows (see DESIGN.md, "The model contract").

``encode`` -> latent parameters, ``embed`` -> deterministic code, ``decode`` -> output distribution,
``forward`` -> everything the loss needs, ``loss`` -> LossOutput(total, terms). Capability flags are
class attributes that the trainer, the CLI and the evaluators ask instead of a model's name.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import AekitError, ConfigError
from ..nn import Decoder, DecoderOutput, OutputHead


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

    @torch.no_grad()
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
        mean = x.reshape(x.shape[0], *decoders[0].input_shape).float().mean(0)
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
