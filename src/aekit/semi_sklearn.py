"""scikit-learn classifiers for semi-supervised learning with deep generative models (Kingma, Rezende,
Mohamed & Welling 2014, "Semi-supervised Learning with Deep Generative Models"):

- ``M2Classifier``: the classifier q(y|x) of M2, trained on labelled and unlabelled rows together;
  ``stack_m1=True`` trains M1 (a VAE) first and M2 on its latent codes (M1+M2).
- ``M1Classifier``: M1's posterior means as features for any scikit-learn classifier (RBF SVC by default).

``fit(X, y)`` follows the scikit-learn convention for semi-supervised estimators: a label of -1 marks
an unlabelled row. ``classes_`` holds the labels seen on labelled rows (any sortable values);
``predict``, ``predict_proba`` and ``score`` (accuracy) work as for any classifier, and ``clone``,
``get_params`` / ``set_params`` and pickling work (torch modules are pickled as safetensors bytes
plus their JSON config). Float64 input is computed in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .config import TrainConfig, estimator_train_config
from .errors import ConfigError, DataError
from .sk_state import PicklesModule, _LegacyPacked

_BATCH = 4096
_FLOATS = [np.float32, np.float64]


def _classifier_has(name: str) -> Any:
    """available_if check: the (default SVC) classifier has method ``name``."""
    def check(est: Any) -> bool:
        from sklearn.svm import SVC

        return hasattr(est.classifier if est.classifier is not None else SVC(), name)

    return check


class _SemiBase(PicklesModule, ClassifierMixin, BaseEstimator):
    """Label handling, seeding, batching and pickling shared by the two classifiers."""

    _POSITIVE_INTS = ("latent_dim", "m1_latent_dim", "m1_max_epochs", "m1_k", "k", "max_epochs", "batch_size")
    _SIZES = ("hidden_dims", "m1_hidden_dims")
    _OPTION_DICTS = ("model_options", "train_options")

    def _check_params(self) -> None:
        """Each parameter of the right kind, in one sentence (ConfigError), before anything is trained."""
        params = self.get_params(deep=False)
        for name in self._POSITIVE_INTS:
            v = params.get(name, 1)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"{name}={v!r} must be a positive integer.")
        for name in self._SIZES:
            v = params.get(name, ())
            if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__") or not all(
                    isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h > 0 for h in v):
                raise ConfigError(f"{name}={v!r} must be a list of positive layer sizes, e.g. (500,).")
        for name in self._OPTION_DICTS:
            if params.get(name) is not None and not isinstance(params[name], dict):
                raise ConfigError(f"{name}={params[name]!r} must be a dict of options or None.")
        lr, alpha = params.get("learning_rate", 1.0), params.get("alpha", 0.0)
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)) or not lr > 0:
            raise ConfigError(f"learning_rate={lr!r} must be a positive number.")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)) or not alpha >= 0:
            raise ConfigError(f"alpha={alpha!r} must be a non-negative number.")

    def _split_labels(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Check the parameters, validate X and y; set classes_; return X and integer codes (-1 for unlabelled rows)."""
        self._check_params()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y (use -1 for unlabelled rows).")
        X, y = validate_data(self, X, y, dtype=_FLOATS, y_numeric=False)
        y = column_or_1d(y, warn=True)
        unlabelled = np.asarray(y == -1, dtype=bool) if y.dtype.kind in "biufO" else np.zeros(len(y), bool)
        labels = y[~unlabelled]
        if labels.size:
            check_classification_targets(labels)
        self.classes_ = np.unique(labels)
        if self.classes_.size < 2:
            raise DataError(
                f"{type(self).__name__} needs labelled rows of at least two classes; got {self.classes_.size} class(es)."
            )
        codes = np.full(len(y), -1, dtype=np.int64)
        codes[~unlabelled] = np.searchsorted(self.classes_, labels)
        return X, codes

    def _seed(self) -> int:
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _train_config(self, epochs: int, seed: int) -> TrainConfig:
        for name in ("max_epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive integer.")
        return estimator_train_config(self, epochs, seed)

    def _likelihood(self, X: np.ndarray) -> str:
        if self.likelihood is not None:
            return self.likelihood
        return "bernoulli" if X.size and float(X.min()) >= 0.0 and float(X.max()) <= 1.0 else "gaussian"

    def _tensor(self, X: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(X, dtype=np.float32, order="C", copy=True))

    @torch.no_grad()
    def _map(self, fn: Any, x: torch.Tensor) -> np.ndarray:
        dev = torch.device(self.device)
        return torch.cat([fn(x[i: i + _BATCH].to(dev)).float().cpu() for i in range(0, x.shape[0], _BATCH)]).numpy()

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class M2Classifier(_SemiBase):
    """The M2 classifier q(y|x), trained semi-supervised (-1 = unlabelled); ``stack_m1=True`` is M1+M2.

    ``latent_dim``, ``hidden_dims``, ``alpha``: M2's (the paper: 50, (500,) or (300,) for 100 labels,
    0.1). ``likelihood`` of M2's decoder on X (default: Bernoulli for data in [0, 1], else Gaussian);
    with ``stack_m1`` M2 models M1's codes with a Gaussian and M1 has the likelihood instead.
    ``m1_latent_dim``, ``m1_hidden_dims``, ``m1_max_epochs``: M1 (the paper: 50, (600, 600)); ``m1_k`` > 1
    trains M1 with the importance-weighted bound of that many samples (an IWAE) instead of the ELBO.
    ``labelled_fraction``: share of each batch given to (repeated) labelled rows. ``model_options``:
    any other M2Config field; ``train_options`` any other TrainConfig field, for M1 and M2 alike.
    """

    def __init__(self, stack_m1: bool = False, latent_dim: int = 50, hidden_dims: tuple[int, ...] = (500,),
                 alpha: float = 0.1, likelihood: str | None = None, m1_latent_dim: int = 50,
                 m1_hidden_dims: tuple[int, ...] = (600, 600), m1_max_epochs: int = 50, m1_k: int = 1, max_epochs: int = 50,
                 batch_size: int = 100, learning_rate: float = 1e-3, labelled_fraction: float = 0.1,
                 model_options: dict | None = None, random_state: Any = None, device: str = "cpu",
                 verbose: bool = False, train_options: dict | None = None):
        self.stack_m1 = stack_m1
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.alpha = alpha
        self.likelihood = likelihood
        self.m1_latent_dim = m1_latent_dim
        self.m1_hidden_dims = m1_hidden_dims
        self.m1_max_epochs = m1_max_epochs
        self.m1_k = m1_k
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.labelled_fraction = labelled_fraction
        self.model_options = model_options
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.train_options = train_options

    def fit(self, X: Any, y: Any) -> "M2Classifier":
        """Train on X (n_samples, n_features) with labels y, -1 marking unlabelled rows."""
        from .models.ssvae import M2Config
        from .semi import default_m1_config, default_m2_codes_config, fit_m1_m2, fit_m2

        X, codes = self._split_labels(X, y)
        seed = self._seed()
        k = int(self.classes_.size)
        m2_options = {"latent_dim": int(self.latent_dim), "hidden_dims": tuple(self.hidden_dims),
                      "alpha": float(self.alpha), **dict(self.model_options or {})}
        x, yt = self._tensor(X), torch.from_numpy(codes)
        train = self._train_config(self.max_epochs, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self.stack_m1:
                m1_config = default_m1_config((X.shape[1],), self._likelihood(X), k=int(self.m1_k),
                                              latent_dim=int(self.m1_latent_dim), hidden_dims=tuple(self.m1_hidden_dims))
                default_m2_codes_config(2, k, **m2_options)  # reject bad options before M1 is trained
                stack = fit_m1_m2(x, yt, num_classes=k, m1_config=m1_config,
                                  m1_train=self._train_config(self.m1_max_epochs, seed), m2_options=m2_options,
                                  m2_train=train, labelled_fraction=self.labelled_fraction)
                self.m1_, self.model_ = stack.m1, stack.m2
                self.m1_dims_ = stack.dims.numpy()
            else:
                config = M2Config.from_dict({"input_shape": (X.shape[1],), "num_classes": k,
                                             "likelihood": self._likelihood(X), **m2_options})
                self.model_ = fit_m2(x, yt, config=config, train_config=train,
                                     labelled_fraction=self.labelled_fraction)
                self.m1_, self.m1_dims_ = None, None   # no M1 in this fit (an earlier fit's is dropped)
        return self

    def _inputs(self, X: Any) -> torch.Tensor:
        check_is_fitted(self)
        x = self._tensor(validate_data(self, X, dtype=_FLOATS, reset=False))
        if getattr(self, "m1_", None) is not None:   # as fitted, whatever stack_m1 says now
            from .semi import posterior_codes

            x = posterior_codes(self.m1_, x, torch.from_numpy(self.m1_dims_))
        return x

    def predict_proba(self, X: Any) -> np.ndarray:
        """q(y|x) for every row, (n_samples, n_classes), columns in the order of ``classes_``."""
        x = self._inputs(X)
        self.model_.eval()
        return self._map(self.model_.predict_proba, x).astype(np.float64)


class M1Classifier(_SemiBase):
    """M1 (a VAE fitted on every row of X, labelled or not) + a classifier fitted on the posterior
    means of the labelled rows (``classifier``, default ``SVC()``; the paper used a transductive SVM).

    ``k`` > 1 trains M1 with the importance-weighted bound of k samples (an IWAE) instead of the ELBO.
    ``transform(X)`` gives the features (posterior means, (n_samples, latent_dim)). ``train_options``: any
    TrainConfig field the other parameters do not set (e.g. ``{"schedule": "cosine"}``).
    """

    def __init__(self, classifier: Any = None, latent_dim: int = 50, hidden_dims: tuple[int, ...] = (600, 600),
                 activation: str = "softplus", likelihood: str | None = None, k: int = 1, max_epochs: int = 50,
                 batch_size: int = 100, learning_rate: float = 1e-3, binarize: bool | None = None,
                 random_state: Any = None, device: str = "cpu", verbose: bool = False, train_options: dict | None = None):
        self.classifier = classifier
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.activation = activation
        self.likelihood = likelihood
        self.k = k
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.binarize = binarize
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.train_options = train_options

    def fit(self, X: Any, y: Any) -> "M1Classifier":
        from sklearn.svm import SVC

        from .semi import default_m1_config, fit_m1

        X, codes = self._split_labels(X, y)
        seed = self._seed()
        config = default_m1_config((X.shape[1],), self._likelihood(X), k=int(self.k), latent_dim=int(self.latent_dim),
                                   hidden_dims=tuple(self.hidden_dims), activation=self.activation)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.m1_ = fit_m1(self._tensor(X), config=config, train_config=self._train_config(self.max_epochs, seed),
                              binarize=self.binarize)
        labelled = codes >= 0
        self.classifier_ = clone(self.classifier if self.classifier is not None else SVC())
        self.classifier_.fit(self.transform(X[labelled]), codes[labelled])
        return self

    def transform(self, X: Any) -> np.ndarray:
        """M1's posterior means E[z|x], (n_samples, latent_dim)."""
        check_is_fitted(self)
        x = self._tensor(validate_data(self, X, dtype=_FLOATS, reset=False))
        self.m1_.eval()
        return self._map(self.m1_.embed, x)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[self.classifier_.predict(self.transform(X))]

    @available_if(_classifier_has("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        """The classifier's class probabilities on M1's features (columns in the order of ``classes_``)."""
        return self.classifier_.predict_proba(self.transform(X))

    @available_if(_classifier_has("decision_function"))
    def decision_function(self, X: Any) -> np.ndarray:
        return self.classifier_.decision_function(self.transform(X))


_Packed = _LegacyPacked   # the name pickles written before PicklesModule refer to
