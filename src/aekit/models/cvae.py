"""The conditional VAE (Kingma, Rezende, Mohamed & Welling 2014, "Semi-supervised Learning with Deep
Generative Models", the M2 model with the label observed; Sohn, Lee & Yan 2015).

q(z | x, y) = N(mu(x, y), diag sigma^2(x, y)), p(z) = N(0, I), p(x | y, z): the label enters the
encoder and the decoder as a one-hot vector (or, for any other condition, a float vector of width
``num_classes`` passed as is). Everything else — the ELBO with L samples, beta, warm-up, free bits,
capacity, the likelihoods, the importance weights — is the VAE's (models/vae.py, through
``VAE.condition``). Since z is trained to carry what y does not, fixing z and varying y gives the
"analogies" of Kingma et al. 2014, Fig. 1 (see aekit.evaluate.figures.analogy_grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError, DataError
from ..nn import model_device
from .vae import VAE, VAEConfig


@dataclass(frozen=True)
class CVAEConfig(VAEConfig):
    """A VAEConfig whose ``num_classes`` (the width of the condition vector) is required."""

    num_classes: int = 10

    def validate(self) -> None:
        super().validate()
        if self.num_classes < 1:
            raise ConfigError(f"num_classes={self.num_classes!r}: a conditional VAE needs at least one class.")


class CVAE(VAE):
    config_class = CVAEConfig
    is_conditional = True

    def sample(self, n: int, y: torch.Tensor | int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means at z ~ N(0, I) for the given class(es): an int, labels (n,) or conditions (n, C)."""
        if y is None:
            raise DataError(f"{type(self).__name__} samples a given class: pass y (an int, or {n} labels).")
        if isinstance(y, int) or (isinstance(y, torch.Tensor) and y.dim() == 0):
            y = torch.full((n,), int(y), dtype=torch.long, device=model_device(self))
        if y.shape[0] != n:
            raise DataError(f"sample({n}) got {y.shape[0]} labels; expected one per sample.")
        return super().sample(n, y, generator)
