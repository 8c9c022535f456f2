"""Model families, one file each; ``aekit.registry`` maps names to (model class, config class)."""

from .ae import AE, AEConfig
from .base import Autoencoder, GaussianLatent, LossOutput, PointLatent
from .vae import VAE, VAEConfig
from .regularized import (  # noqa: E402
    CAEConfig, DAEConfig, LinearAEConfig, RegularizedAE, RegularizedAEConfig, SCAEConfig, SparseAEConfig,
)
from .stacked import StackedAE, StackedAEConfig, StackedDAEConfig  # noqa: E402
from .cvae import CVAE, CVAEConfig  # noqa: E402
from .iwae import IWAE, IWAEConfig  # noqa: E402

__all__ = ["AE", "AEConfig", "Autoencoder", "GaussianLatent", "LossOutput", "PointLatent", "VAE", "VAEConfig"]
__all__ += [
    "CAEConfig", "DAEConfig", "LinearAEConfig", "RegularizedAE", "RegularizedAEConfig", "SCAEConfig",
    "SparseAEConfig", "StackedAE", "StackedAEConfig", "StackedDAEConfig",
]
__all__ += ["CVAE", "CVAEConfig", "IWAE", "IWAEConfig"]
