"""scikit-learn estimators for the autoencoder family: ``AutoencoderReducer`` and ``VAEReducer``.

Dimensionality reduction with a trained encoder, as in Hinton & Salakhutdinov 2006 ("Reducing the
dimensionality of data with neural networks") for the deterministic autoencoders and Kingma &
Welling 2013 ("Auto-Encoding Variational Bayes") for the variational ones, where ``transform``
returns the posterior mean. Any registry model can be used by name (``model=``); what the
estimator does with it is decided by the model's capability flags, never by its name. A conditional
model (``cvae``) encodes and decodes given a label: ``fit(X, y)``, ``transform(X, y)``,
``inverse_transform(Z, y)``, with y class labels of any type (``classes_``) or condition vectors
(n_samples, width).

The scikit-learn contract: ``__init__`` only stores parameters, ``fit`` returns self, fitted
attributes end in ``_``, float32 input gives float32 output, pickling and ``clone`` work (the torch
module is pickled as safetensors bytes plus its JSON config, never as torch internals), and
``save_pretrained`` / ``from_pretrained`` write and read safetensors + JSON with no pickle at all.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from . import registry
from .errors import CheckpointError, ConfigError, DataError
from .nn import model_device
from .sk_state import PicklesModule
from .semi_sklearn import M1Classifier, M2Classifier  # noqa: F401  semi-supervised classifiers (Kingma et al. 2014)
from .impute_sklearn import VAEImputer  # noqa: F401  missing values (Mattei & Frellsen 2019)

ESTIMATOR_NAME = "estimator.json"
_BATCH = 4096  # rows per forward pass in transform / inverse_transform / score
_FLOATS = [np.float64, np.float32]


class _BaseReducer(PicklesModule, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Shared fit / transform / inverse_transform / pickling / saving of the two reducers.

    Subclasses only declare their parameters (scikit-learn reads them from ``__init__``), whether
    the model must have a likelihood, and what ``score`` means.
    """

    _needs_likelihood: ClassVar[bool] = False

    # -- building -------------------------------------------------------------------------------
    def _check_params(self) -> None:
        for name in ("n_components", "max_epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive integer.")
        if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, (int, float)) or not self.learning_rate > 0:
            raise ConfigError(f"learning_rate={self.learning_rate!r} must be a positive number.")
        if self.model_options is not None and not isinstance(self.model_options, dict):
            raise ConfigError(f"model_options={self.model_options!r} must be a dict of the model's config fields or None.")

    def _model_class(self) -> tuple[type, type]:
        model_cls, config_cls = registry.get(self.model)
        if model_cls.uses_labels and model_cls.is_conditional:
            raise ConfigError(f"model={self.model!r} is a semi-supervised classifier (labels, -1 for unlabelled rows); "
                              "use aekit.sklearn.M2Classifier.")
        if self._needs_likelihood and not model_cls.has_likelihood:
            raise ConfigError(
                f"model={self.model!r} has no likelihood (no ELBO), so {type(self).__name__} cannot use it; "
                "use AutoencoderReducer for deterministic models."
            )
        return model_cls, config_cls

    def _conditions(self, conditional: bool, y: Any, n_rows: int, fitting: bool = False) -> torch.Tensor | None:
        """What a conditional model encodes and decodes with: class indices into ``classes_`` (labels of
        any type, y of shape (n,)) or float condition vectors (n, width); None for other models."""
        if not conditional:
            return None
        if y is None:
            raise ConfigError(f"model={self.model!r} is conditional: give the labels or condition vectors y with X "
                              "(fit(X, y), transform(X, y), inverse_transform(Z, y)).")
        arr = np.asarray(y)
        if arr.ndim not in (1, 2) or arr.shape[0] != n_rows:
            raise DataError(f"y has shape {arr.shape}; expected {n_rows} labels or {n_rows} condition vectors.")
        if arr.ndim == 2:
            if arr.dtype.kind not in "biuf" or not np.isfinite(arr.astype(np.float64)).all():
                raise DataError("y's condition vectors must be finite numbers.")
            if fitting:
                self.classes_, self.condition_width_ = None, int(arr.shape[1])
            if self.classes_ is not None or arr.shape[1] != self.condition_width_:
                raise DataError(f"y has condition vectors of width {arr.shape[1]}; the model was fitted on "
                                + ("labels." if self.classes_ is not None else f"width {self.condition_width_}."))
            return torch.as_tensor(arr, dtype=torch.float32)
        if fitting:
            self._fit_classes(arr)
            self.condition_width_ = len(self.classes_)
        if self.classes_ is None:
            raise DataError("y holds labels; the model was fitted on condition vectors.")
        return self._class_indices(arr)

    def _fit_classes(self, arr: np.ndarray) -> None:
        """``classes_``: the sorted distinct labels of y (any type; missing values refused)."""
        if arr.dtype.kind == "f" and not np.isfinite(arr).all() or arr.dtype.kind == "O" and any(v is None for v in arr):
            raise DataError("y has missing (NaN or None) labels; expected a label on every row.")
        self.classes_ = np.unique(arr)

    def _class_indices(self, arr: np.ndarray) -> torch.Tensor:
        """Labels as indices into ``classes_``, (N,) long; a label not seen in fit is refused."""
        idx = np.clip(np.searchsorted(self.classes_, arr), 0, len(self.classes_) - 1)
        unseen = self.classes_[idx] != arr
        if unseen.any():
            raise DataError(f"y holds labels not seen in fit, e.g. {arr[unseen][0]!r}; known: {list(self.classes_)}.")
        return torch.as_tensor(idx, dtype=torch.long)

    def _build_config(self, config_cls: type, X: np.ndarray) -> Any:
        """The model config: input_shape=(n_features,), latent_dim=n_components, hidden_dims, plus model_options."""
        options = dict(self.model_options or {})
        for key, param in (("latent_dim", "n_components"), ("hidden_dims", "hidden_dims")):
            if key in options:
                raise ConfigError(f"model_options[{key!r}] duplicates the estimator's {param} parameter; set {param} instead.")
        n_features = X.shape[1]
        shape = tuple(options.pop("input_shape", (n_features,)))
        if int(np.prod(shape)) != n_features:
            raise ConfigError(f"model_options['input_shape']={list(shape)} has {int(np.prod(shape))} values; X has {n_features} features.")
        options.update(input_shape=shape, latent_dim=int(self.n_components), hidden_dims=tuple(self.hidden_dims))
        if getattr(self, "condition_width_", None) is not None:
            options.setdefault("num_classes", self.condition_width_)
        elif getattr(self, "classes_", None) is not None:   # the classes a stacked model's head predicts
            options.setdefault("num_classes", len(self.classes_))
        names = {f.name for f in dataclasses.fields(config_cls)}
        if "likelihood" in names and "likelihood" not in options:
            # Bernoulli (sigmoid outputs, cross-entropy) suits data in [0, 1] such as pixel
            # intensities; anything else gets a Gaussian decoder (squared error). A model that
            # accepts only one likelihood keeps its own default.
            in_unit = bool(X.size) and float(X.min()) >= 0.0 and float(X.max()) <= 1.0
            try:
                return config_cls.from_dict({**options, "likelihood": "bernoulli" if in_unit else "gaussian"})
            except ConfigError:
                pass
        return config_cls.from_dict(options)

    def fit(self, X: Any, y: Any = None) -> "_BaseReducer":
        """Train a fresh model on X (n_samples, n_features); labels are used only by models that use them."""
        from .config import estimator_train_config
        from .train import fit as train_fit

        self._check_params()
        X = validate_data(self, X, dtype=_FLOATS)
        model_cls, config_cls = self._model_class()
        self.classes_, self.condition_width_ = None, None
        labels = self._conditions(model_cls.is_conditional, y, X.shape[0], fitting=True)
        if model_cls.uses_labels and labels is None:   # a classifier trained along (stacked): labels of any type
            if y is None:
                raise DataError(f"model={self.model!r} learns from labels; give them with X (fit(X, y)).")
            arr = np.asarray(y)
            if arr.shape != (X.shape[0],):
                raise DataError(f"y has shape {arr.shape}; expected {X.shape[0]} labels.")
            self._fit_classes(arr)
            labels = self._class_indices(arr)
        config = self._build_config(config_cls, X)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        train_config = estimator_train_config(self, self.max_epochs, seed)
        printer = None
        if self.verbose:
            def printer(row: dict[str, float]) -> None:
                print(f"[{type(self).__name__}] epoch {int(row['epoch'])}/{self.max_epochs}: "
                      f"loss {row['train_loss']:.5g} ({row['seconds']:.1f}s)", flush=True)
        x = _as_tensor(X, config.input_shape)
        # The seed alone decides the initial weights and the batch order; the caller's torch RNG is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = model_cls(config)
            result = train_fit(model, x, labels, config=train_config, on_epoch_end=printer)
        model.eval()
        self.model_ = model
        self.n_iter_ = int(result.epochs_run)
        self.history_ = result.history
        self.fit_seconds_ = float(result.seconds)
        self._seed = seed
        self._n_features_out = int(model.latent_dim)   # n_components, or positions x n_components for the VQ-VAE
        return self

    # -- using ----------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return model_device(self.model_)

    @torch.no_grad()
    def _map(self, fn: Any, x: torch.Tensor, c: torch.Tensor | None = None) -> np.ndarray:
        """fn(x_batch, c_batch) over batches of x (and conditions c), concatenated as float32 numpy (N, ...)."""
        self.model_.eval()
        dev = self._device()
        out = [fn(x[i : i + _BATCH].to(dev), None if c is None else c[i : i + _BATCH].to(dev)).float().cpu()
               for i in range(0, x.shape[0], _BATCH)]
        return torch.cat(out).numpy() if out else np.zeros((0,), np.float32)

    def _fitted_conditions(self, y: Any, n_rows: int) -> torch.Tensor | None:
        return self._conditions(self.model_.is_conditional, y, n_rows)

    def transform(self, X: Any, y: Any = None) -> np.ndarray:
        """The deterministic code (the posterior mean for variational models), (n_samples, n_components);
        for the VQ-VAE n_components is the size of one code vector and the code holds the quantized vector
        of every position in turn, (n_samples, positions * n_components). y: the labels or condition vectors of a
        conditional model."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        c = self._fitted_conditions(y, X.shape[0])
        Z = self._map(self.model_.embed, _as_tensor(X, self.model_.config.input_shape), c)
        return Z.reshape(X.shape[0], self._n_features_out).astype(X.dtype, copy=False)   # the fitted size

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """fit(X, y), then transform(X) (with y for a conditional model)."""
        self.fit(X, y, **fit_params)
        return self.transform(X, y) if self.model_.is_conditional else self.transform(X)

    def inverse_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Decoder means at the codes X (n_samples, n_components), back in input space (n_samples, n_features);
        y as in transform."""
        check_is_fitted(self)
        Z = check_array(X, dtype=_FLOATS)
        if Z.shape[1] != self._n_features_out:
            raise DataError(f"inverse_transform got codes with {Z.shape[1]} columns; the fitted model's codes "
                            f"have {self._n_features_out}.")
        c = self._fitted_conditions(y, Z.shape[0])
        out = self._map(lambda z, cb: self.model_.decode(z, cb).mean(), _as_tensor(Z, (Z.shape[1],)), c)
        return out.reshape(Z.shape[0], self.n_features_in_).astype(Z.dtype, copy=False)

    def reconstruction_error(self, X: Any, y: Any = None) -> float:
        """Mean squared error of decode(encode(X)) over all entries; y as in transform."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        c = self._fitted_conditions(y, X.shape[0])
        rec = self._map(self.model_.reconstruct, _as_tensor(X, self.model_.config.input_shape), c)
        return float(np.mean((rec.reshape(X.shape).astype(np.float64) - X) ** 2))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # Computation is in float32; the output has the input's float type.
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # -- saving ---------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the model (config.json + model.safetensors) and the estimator (estimator.json) into directory."""
        from .io import atomic_write_text, save_pretrained

        check_is_fitted(self)
        directory = save_pretrained(self.model_, directory)
        meta = {
            "estimator": type(self).__name__,
            "params": _jsonable(self.get_params()),
            "n_features_in_": int(self.n_features_in_),
            "feature_names_in_": [str(f) for f in getattr(self, "feature_names_in_", [])] or None,
            "n_iter_": self.n_iter_,
            "fit_seconds_": self.fit_seconds_,
            "history_": _jsonable(self.history_),
            "seed": self._seed,
            "classes_": _jsonable(list(self.classes_)) if getattr(self, "classes_", None) is not None else None,
            "condition_width_": getattr(self, "condition_width_", None),
        }
        atomic_write_text(Path(directory) / ESTIMATOR_NAME, json.dumps(meta, indent=2) + "\n")
        return Path(directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "_BaseReducer":
        """Rebuild a fitted estimator written by ``save_pretrained`` (no pickle involved)."""
        from .io import from_pretrained

        path = Path(directory) / ESTIMATOR_NAME
        if not path.is_file():
            raise CheckpointError(f"{str(directory)!r} holds no saved estimator: it has no {ESTIMATOR_NAME}.")
        try:
            meta = json.loads(path.read_text())
            target = {c.__name__: c for c in (AutoencoderReducer, VAEReducer)}[meta["estimator"]]
            params = dict(meta["params"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{str(path)!r} is not a readable aekit estimator file ({type(exc).__name__}: {exc}).") from None
        if not issubclass(target, cls):
            raise CheckpointError(f"{str(directory)!r} holds a {target.__name__}, not a {cls.__name__}.")
        if isinstance(params.get("hidden_dims"), list):
            params["hidden_dims"] = tuple(params["hidden_dims"])
        try:
            est = target(**params)
        except TypeError as exc:
            raise CheckpointError(f"{str(path)!r} has parameters {target.__name__} does not take ({exc}).") from None
        est.model_ = from_pretrained(directory)
        try:
            est.n_features_in_ = int(meta["n_features_in_"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{str(path)!r} lacks a valid n_features_in_ (the number of input features).") from None
        model_in = math.prod(est.model_.config.input_shape)
        if est.n_features_in_ != model_in or int(est.model_.config.latent_dim) != int(est.n_components):
            raise CheckpointError(f"{str(path)!r} describes {est.n_features_in_} features and n_components="
                                  f"{est.n_components}, but the saved model takes {model_in} and codes "
                                  f"{est.model_.config.latent_dim}: the two files do not belong together.")
        if meta.get("feature_names_in_"):
            est.feature_names_in_ = np.asarray(meta["feature_names_in_"], dtype=object)
        est.n_iter_ = int(meta.get("n_iter_", 0))
        est.history_ = list(meta.get("history_", []))
        est.fit_seconds_ = float(meta.get("fit_seconds_", 0.0))
        est._seed = int(meta.get("seed", 0))
        est.classes_ = np.asarray(meta["classes_"]) if meta.get("classes_") is not None else None
        est.condition_width_ = meta.get("condition_width_")
        est._n_features_out = int(est.model_.latent_dim)
        return est


class AutoencoderReducer(_BaseReducer):
    """Reduce dimension with a deterministic autoencoder from the registry (``model``, default "ae").

    ``n_components`` is the latent size; ``hidden_dims`` the encoder's hidden layers (the decoder
    mirrors them); ``model_options`` any other config field of the model (e.g. ``{"architecture":
    "conv", "input_shape": [1, 28, 28]}`` to read each row as an image). When the model has a
    ``likelihood`` field that ``model_options`` does not set, it is Bernoulli for data in [0, 1]
    and Gaussian otherwise. ``train_options`` any other field of ``aekit.config.TrainConfig`` (e.g.
    ``{"schedule": "cosine"}`` or ``{"weight_decay": 1e-4, "optimizer": "adamw"}``). ``score`` is the
    negative mean squared reconstruction error.
    """

    def __init__(self, model: str = "ae", n_components: int = 2, model_options: dict | None = None,
                 hidden_dims: tuple[int, ...] = (256, 128), max_epochs: int = 50, batch_size: int = 128,
                 learning_rate: float = 1e-3, random_state: Any = None, verbose: bool = False, device: str = "cpu",
                 train_options: dict | None = None):
        self.model = model
        self.n_components = n_components
        self.model_options = model_options
        self.train_options = train_options
        self.hidden_dims = hidden_dims
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    def score(self, X: Any, y: Any = None) -> float:
        """Negative mean squared reconstruction error (higher is better, as scikit-learn expects)."""
        return -self.reconstruction_error(X, y if self.model_.is_conditional else None)


class VAEReducer(_BaseReducer):
    """Reduce dimension with a variational model from the registry (``model``, default "vae").

    ``transform`` returns the posterior mean E[z|x]; ``score`` is the mean ELBO per example in nats
    (Monte-Carlo, with a fixed seed so repeated calls agree). Parameters as in AutoencoderReducer.
    """

    _needs_likelihood = True

    def __init__(self, n_components: int = 2, model: str = "vae", model_options: dict | None = None,
                 hidden_dims: tuple[int, ...] = (256, 128), max_epochs: int = 50, batch_size: int = 128,
                 learning_rate: float = 1e-3, random_state: Any = None, verbose: bool = False, device: str = "cpu",
                 train_options: dict | None = None):
        self.n_components = n_components
        self.model = model
        self.model_options = model_options
        self.train_options = train_options
        self.hidden_dims = hidden_dims
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    def score(self, X: Any, y: Any = None) -> float:
        """Mean ELBO per example (the model's ``elbo`` loss term; minus its loss if it reports none)."""
        from .train import evaluate_loss

        check_is_fitted(self)
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        x = _as_tensor(X, self.model_.config.input_shape).to(self._device())
        labels = self._fitted_conditions(y, X.shape[0])
        if labels is None and y is not None and self.model_.uses_labels:
            labels = torch.as_tensor(np.asarray(y), dtype=torch.long)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed)  # the reparameterization noise, so score(X) is repeatable
            terms = evaluate_loss(self.model_, x, labels, batch_size=_BATCH)
        return float(terms["elbo"]) if "elbo" in terms else -float(terms["loss"])


# -- helpers ------------------------------------------------------------------------------------
def _as_tensor(X: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    """(N, prod(shape)) numpy -> float32 tensor (N, *shape); copies read-only input (torch needs writable memory)."""
    arr = np.ascontiguousarray(X, dtype=np.float32)
    if not arr.flags.writeable:
        arr = arr.copy()
    return torch.from_numpy(arr).reshape(arr.shape[0], *shape)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return None  # e.g. a RandomState instance: not reproducible from JSON, stored as None
