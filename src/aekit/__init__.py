"""aekit: the autoencoder family — AE, VAE and their relatives — as a library and a command-line tool."""

__version__ = "0.1.0"

from .config import ModelConfig, TrainConfig  # noqa: E402
from .errors import AekitError, CheckpointError, ChecksumError, ConfigError, DataError, TrainingError  # noqa: E402
from .io import from_pretrained, save_pretrained  # noqa: E402
from .registry import REGISTRY, build  # noqa: E402
from .compare import ComparisonResult, compare  # noqa: E402  (binds the function over the submodule name)

__all__ = [
    "AekitError",
    "AutoencoderReducer",
    "CheckpointError",
    "ChecksumError",
    "ComparisonResult",
    "ConfigError",
    "DataError",
    "ModelConfig",
    "REGISTRY",
    "TrainConfig",
    "TrainingError",
    "VAEReducer",
    "__version__",
    "build",
    "compare",
    "from_pretrained",
    "save_pretrained",
]


def __getattr__(name: str):
    # The scikit-learn estimators load scikit-learn (about a second), so only when asked for.
    if name in ("AutoencoderReducer", "VAEReducer"):
        from . import sklearn as _sklearn

        return getattr(_sklearn, name)
    raise AttributeError(f"module 'aekit' has no attribute {name!r}")
