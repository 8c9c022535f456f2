"""The plain autoencoder (Rumelhart, Hinton & Williams 1986; Hinton & Salakhutdinov 2006).

x -> h = f(x) -> x_hat = g(h), trained on the reconstruction log-likelihood: squared error for a
Gaussian decoder (``likelihood='gaussian'``), cross-entropy for a Bernoulli one. MLP or conv.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import losses
from ..config import ModelConfig, check_choice
from ..nn import LIKELIHOODS, Decoder, DecoderOutput, Encoder, OutputHead
from .base import Autoencoder, LossOutput, PointLatent


@dataclass(frozen=True)
class AEConfig(ModelConfig):
    """``likelihood``: 'gaussian' trains on squared error, 'bernoulli' on binary cross-entropy."""

    likelihood: str = "gaussian"

    def validate(self) -> None:
        super().validate()
        check_choice("likelihood", self.likelihood, LIKELIHOODS)


@dataclass
class AEOutput:
    latent: PointLatent
    recon: DecoderOutput


class AE(Autoencoder):
    config_class = AEConfig

    def __init__(self, config: AEConfig):
        super().__init__(config)
        self.encoder = Encoder(config, config.latent_dim)
        self.head = OutputHead(config.likelihood, "fixed", 1.0)
        self.decoder = Decoder(config)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> PointLatent:
        return PointLatent(self.encoder(x))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> DecoderOutput:
        return self.head(self.decoder(z))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> AEOutput:
        latent = self.encode(x)
        return AEOutput(latent, self.decode(latent.z))

    def reconstruction_loss(self, x: torch.Tensor, recon: DecoderOutput) -> torch.Tensor:
        """Per-example loss (N,): squared error (Gaussian) or cross-entropy (Bernoulli)."""
        if recon.likelihood == "gaussian":
            return losses.squared_error(x, recon.loc)
        return -recon.log_prob(x)

    def loss(self, x: torch.Tensor, out: AEOutput, y: torch.Tensor | None = None) -> LossOutput:
        rec = self.reconstruction_loss(x, out.recon).mean()
        mse = (x - out.recon.mean()).pow(2).mean()
        return LossOutput(rec, {"reconstruction": rec.detach(), "mse": mse.detach()})
