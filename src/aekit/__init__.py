"""aekit: the autoencoder family — AE, VAE and their relatives — as a library and a command-line tool."""

__version__ = "0.1.0"

from .config import ModelConfig, TrainConfig  # noqa: E402
from .errors import AekitError, CheckpointError, ChecksumError, ConfigError, DataError, TrainingError  # noqa: E402
from .io import from_pretrained, save_pretrained  # noqa: E402
from .registry import REGISTRY, build  # noqa: E402

__all__ = [
    "AekitError",
    "CheckpointError",
    "ChecksumError",
    "ConfigError",
    "DataError",
    "ModelConfig",
    "REGISTRY",
    "TrainConfig",
    "TrainingError",
    "__version__",
    "build",
    "from_pretrained",
    "save_pretrained",
]
