"""``aekit.sklearn.VAEImputer``: fill in missing values (NaN) with a deep latent variable model trained
on the incomplete data itself, the MIWAE of Mattei & Frellsen 2019 ("MIWAE: Deep generative modelling
and imputation of incomplete data sets").

``fit(X)`` trains an importance-weighted autoencoder (``k`` samples) whose bound counts the observed
values only and whose encoder sees 0 where a value is missing (``missing_values=True``), on the
columns standardized by their observed mean and spread (left as they are for data in [0, 1], which
get a Bernoulli decoder). ``transform(X)`` replaces each NaN by its conditional mean given the row's
observed values, estimated by self-normalized importance sampling with ``n_samples`` draws
(``aekit.evaluate.impute``, method ``importance``), and leaves every other value as it was: the
drop-in use of scikit-learn's ``SimpleImputer`` / ``IterativeImputer``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .errors import ConfigError, DataError
from .sk_state import PicklesModule

_FLOATS = [np.float64, np.float32]


class VAEImputer(PicklesModule, TransformerMixin, BaseEstimator):
    """Impute NaN with a MIWAE (Mattei & Frellsen 2019) trained on the incomplete X.

    ``n_components``: latent size; ``hidden_dims``: encoder layers (the decoder mirrors them); ``k``:
    importance samples of the training bound; ``likelihood``: "auto" (Bernoulli when every observed
    value lies in [0, 1], else a Gaussian with a learned variance per feature), "bernoulli" or
    "gaussian"; ``n_samples``: importance samples per row when imputing. The rest as in the reducers.
    """

    def __init__(self, n_components: int = 10, hidden_dims: tuple[int, ...] = (128, 128), k: int = 20,
                 likelihood: str = "auto", max_epochs: int = 100, batch_size: int = 64, learning_rate: float = 1e-3,
                 n_samples: int = 1000, random_state: Any = None, verbose: bool = False, device: str = "cpu",
                 train_options: dict | None = None):
        self.n_components = n_components
        self.hidden_dims = hidden_dims
        self.k = k
        self.likelihood = likelihood
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_samples = n_samples
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.train_options = train_options

    def _check_params(self) -> None:
        for name in ("n_components", "k", "max_epochs", "batch_size", "n_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive integer.")
        if self.likelihood not in ("auto", "bernoulli", "gaussian"):
            raise ConfigError(f"likelihood={self.likelihood!r} is not one of auto, bernoulli, gaussian.")

    def fit(self, X: Any, y: Any = None) -> "VAEImputer":
        """Train on X (n_samples, n_features), NaN marking the missing values; y is ignored."""
        from .config import estimator_train_config
        from .models.iwae import IWAE, IWAEConfig
        from .train import fit as train_fit

        self._check_params()
        X = validate_data(self, X, dtype=_FLOATS, ensure_all_finite="allow-nan")
        observed = ~np.isnan(X)
        empty = np.flatnonzero(~observed.any(0))
        if empty.size:
            raise DataError(f"Column {int(empty[0])} of X has no observed value; a model cannot learn it (drop it).")
        if not observed.any(1).all():
            raise DataError(f"{int((~observed.any(1)).sum())} rows of X have no observed value; drop them before fit.")
        in_unit = float(np.nanmin(X)) >= 0.0 and float(np.nanmax(X)) <= 1.0
        self.likelihood_ = ("bernoulli" if in_unit else "gaussian") if self.likelihood == "auto" else self.likelihood
        if self.likelihood_ == "bernoulli" and not in_unit:
            raise DataError("likelihood='bernoulli' needs the observed values in [0, 1]; use 'gaussian'.")
        if self.likelihood_ == "gaussian":
            self.mean_, std = np.nanmean(X, 0), np.nanstd(X, 0)
            self.scale_ = np.where(std > 0, std, 1.0)
        else:
            self.mean_, self.scale_ = np.zeros(X.shape[1]), np.ones(X.shape[1])
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        config = IWAEConfig(input_shape=(X.shape[1],), latent_dim=int(self.n_components),
                            hidden_dims=tuple(self.hidden_dims), k=int(self.k), likelihood=self.likelihood_,
                            decoder_variance="learned", missing_values=True, output_bias="data")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = IWAE(config)
            result = train_fit(model, self._scaled(X), config=estimator_train_config(self, self.max_epochs, seed))
        self.model_ = model.eval()
        self.n_iter_ = int(result.epochs_run)
        self.history_ = result.history
        self._seed = seed
        return self

    def _scaled(self, X: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((X - self.mean_) / self.scale_, dtype=torch.float32)

    def transform(self, X: Any) -> np.ndarray:
        """X with every NaN replaced by its estimated conditional mean given the row's observed values."""
        from .evaluate.impute import impute

        check_is_fitted(self)
        X = validate_data(self, X, dtype=_FLOATS, ensure_all_finite="allow-nan", reset=False)
        missing = np.isnan(X)
        if not missing.any():
            return X.copy()
        x = self._scaled(X).to(self.device)
        observed = torch.as_tensor(~missing, device=x.device)
        gen = torch.Generator(device=x.device).manual_seed(self._seed)
        # MIWAE's encoder was trained on zeros where values are missing: propose from q(z | those zeros)
        result = impute(self.model_, x, observed, method="importance", steps=int(self.n_samples), warm_start=0,
                        fill=0.0, generator=gen)
        filled = result.mean.double().cpu().numpy() * self.scale_ + self.mean_
        return np.where(missing, filled, X).astype(X.dtype, copy=False)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
