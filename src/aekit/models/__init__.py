"""Model families, one file each; ``aekit.registry`` maps names to (model class, config class)."""

from .ae import AE, AEConfig
from .base import Autoencoder, GaussianLatent, LossOutput, PointLatent
from .vae import VAE, VAEConfig

__all__ = ["AE", "AEConfig", "Autoencoder", "GaussianLatent", "LossOutput", "PointLatent", "VAE", "VAEConfig"]
