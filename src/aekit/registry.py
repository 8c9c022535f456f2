"""The one registry: model name -> (model class, config class).

Nothing else in aekit dispatches on a model's name; the CLI, the trainer and the evaluators ask
the capability flags of the class (``is_generative``, ``uses_labels`` ...).
"""

from __future__ import annotations

from typing import Any

from .config import ModelConfig
from .errors import ConfigError
from .models.ae import AE, AEConfig
from .models.base import Autoencoder
from .models.regularized import CAEConfig, DAEConfig, LinearAEConfig, RegularizedAE, SCAEConfig, SparseAEConfig
from .models.stacked import StackedAE, StackedAEConfig, StackedDAEConfig
from .models.vae import VAE, VAEConfig
from .models.cvae import CVAE, CVAEConfig
from .models.iwae import IWAE, IWAEConfig
from .models.ssvae import M2, M2Config
from .models.vqvae import VQVAE, VQVAEConfig

REGISTRY: dict[str, tuple[type[Autoencoder], type[ModelConfig]]] = {
    "ae": (AE, AEConfig),
    "vae": (VAE, VAEConfig),
    "iwae": (IWAE, IWAEConfig),
    "cvae": (CVAE, CVAEConfig),
    "m2": (M2, M2Config),
    "vqvae": (VQVAE, VQVAEConfig),
    "linear_ae": (RegularizedAE, LinearAEConfig),
    "dae": (RegularizedAE, DAEConfig),
    "sparse_ae": (RegularizedAE, SparseAEConfig),
    "cae": (RegularizedAE, CAEConfig),
    "scae": (RegularizedAE, SCAEConfig),
    "stacked_ae": (StackedAE, StackedAEConfig),
    "stacked_dae": (StackedAE, StackedDAEConfig),
}


def get(name: str) -> tuple[type[Autoencoder], type[ModelConfig]]:
    if name not in REGISTRY:
        raise ConfigError(f"Unknown model {name!r}; known models: {', '.join(sorted(REGISTRY))}.")
    return REGISTRY[name]


def build(name: str, options: dict[str, Any] | None = None) -> Autoencoder:
    """Build a model by registry name from a dict of config options."""
    model_cls, config_cls = get(name)
    return model_cls(config_cls.from_dict(dict(options or {})))


def name_of(model: Autoencoder) -> str:
    """The registry name of a model, found by its (class, config class) pair."""
    for name, (model_cls, config_cls) in REGISTRY.items():
        if type(model) is model_cls and type(model.config) is config_cls:
            return name
    raise ConfigError(f"{type(model).__name__} with {type(model.config).__name__} is not registered.")
