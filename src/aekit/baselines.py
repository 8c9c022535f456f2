"""The classic dimensionality reducers aekit's models are compared with, behind one small interface.

PCA (Pearson 1901; Hotelling 1933), NMF (Lee & Seung 1999), Kernel PCA with a learned pre-image map
(Schölkopf, Smola & Müller 1998; Bakır, Weston & Schölkopf 2004), LDA (Fisher 1936), t-SNE
(van der Maaten & Hinton 2008) and UMAP (McInnes, Healy & Melville 2018), as compared with
autoencoders in Sainburg, McInnes & Gentner 2021 ("Parametric UMAP embeddings for representation
and semisupervised learning").

Interface (what ``aekit.compare`` asks): ``fit(X, y)`` then ``transform(X)``; ``inverse_transform(Z)``
where ``has_inverse``; ``supervised`` methods need labels; ``transductive`` methods (t-SNE) cannot
embed new data, so ``embed_together(X_train, X_test)`` embeds both at once. ``n_components`` is the
size actually produced and ``note`` says anything a reader of the results must know (subsamples,
capped sizes). A method that cannot run here raises ``SkipMethod`` with the reason.
"""

from __future__ import annotations

import abc
import warnings
from typing import Any, ClassVar

import numpy as np

from .errors import AekitError, ConfigError, DataError


class SkipMethod(AekitError):
    """A method that does not apply here (a missing optional package, an impossible size); the reason is reported."""


class Baseline(abc.ABC):
    name: ClassVar[str] = ""
    supervised: ClassVar[bool] = False
    transductive: ClassVar[bool] = False
    has_inverse: ClassVar[bool] = False
    inverse_max_points: int | None = None  # reconstruct at most this many test points (a slow inverse)

    def __init__(self, n_components: int, seed: int = 0):
        if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
            raise ConfigError(f"n_components={n_components!r} must be a positive integer.")
        self.requested = int(n_components)
        self.n_components = int(n_components)
        self.seed = int(seed)
        self.notes: list[str] = []
        self.estimator: Any = None

    @property
    def note(self) -> str:
        return "; ".join(self.notes)

    @abc.abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "Baseline":
        """Fit the method on X (N, D) (and labels y for supervised ones); returns self."""

    def transform(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.transform(X)

    def fit_transform(self, X: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        return self.fit(X, y).transform(X)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        if not self.has_inverse:
            raise AekitError(f"{self.name} has no inverse transform.")
        return self.estimator.inverse_transform(Z)

    def _cap_components(self, limit: int, why: str) -> None:
        if self.requested > limit:
            self.n_components = limit
            self.notes.append(f"{self.requested} dims asked, {limit} given ({why})")


class PCABaseline(Baseline):
    """Exact PCA in float64: the eigendecomposition of the covariance (n >= features) or a full SVD;
    no randomness. (A float32 covariance of 50k MNIST images already moves a few test points'
    nearest neighbours in 2-D.)"""

    name = "pca"
    has_inverse = True

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "PCABaseline":
        from sklearn.decomposition import PCA

        self._cap_components(min(X.shape), "PCA gives at most min(samples, features)")
        solver = "covariance_eigh" if X.shape[0] >= X.shape[1] else "full"
        self.estimator = PCA(self.n_components, svd_solver=solver).fit(np.asarray(X, dtype=np.float64))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.transform(np.asarray(X, dtype=np.float64))


class NMFBaseline(Baseline):
    """Non-negative matrix factorisation X ~ W H; transform solves for W >= 0 with H fixed."""

    name = "nmf"
    has_inverse = True

    def __init__(self, n_components: int, seed: int = 0, max_iter: int = 300, init: str = "nndsvda"):
        super().__init__(n_components, seed)
        self.max_iter, self.init = int(max_iter), init

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "NMFBaseline":
        from sklearn.decomposition import NMF

        low = float(X.min())
        if low < 0:
            raise DataError(f"NMF needs non-negative input, but the data's minimum is {low:.4g}; rescale it to [0, 1] first.")
        self.estimator = NMF(self.n_components, init=self.init, max_iter=self.max_iter, random_state=self.seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.estimator.fit(X)
        if any("converge" in str(w.message).lower() for w in caught):
            self.notes.append(f"not converged in max_iter={self.max_iter}")
        return self


class KernelPCABaseline(Baseline):
    """RBF Kernel PCA with a kernel-ridge pre-image map (fit_inverse_transform) for reconstructions.

    The kernel matrix is n x n, so the fit uses at most ``max_train`` training points (seeded).
    """

    name = "kernel_pca"
    has_inverse = True

    def __init__(self, n_components: int, seed: int = 0, kernel: str = "rbf", gamma: float | None = None,
                 alpha: float = 0.1, max_train: int = 5000):
        super().__init__(n_components, seed)
        self.kernel, self.gamma, self.alpha, self.max_train = kernel, gamma, float(alpha), int(max_train)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "KernelPCABaseline":
        from sklearn.decomposition import KernelPCA

        if X.shape[0] > self.max_train:
            idx = np.random.default_rng(self.seed).choice(X.shape[0], self.max_train, replace=False)
            X = X[np.sort(idx)]
            self.notes.append(f"fitted on {self.max_train} of the training points (the kernel is n x n)")
        self._cap_components(X.shape[0], "at most one component per fitted point")
        self.estimator = KernelPCA(
            self.n_components, kernel=self.kernel, gamma=self.gamma, alpha=self.alpha,
            fit_inverse_transform=True, eigen_solver="randomized", random_state=self.seed,
        ).fit(X)
        return self


class LDABaseline(Baseline):
    """Fisher's linear discriminant: supervised, at most (classes - 1) dimensions; no inverse."""

    name = "lda"
    supervised = True

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "LDABaseline":
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        if y is None:
            raise DataError("LDA is supervised and needs labels, but the data has none.")
        classes = len(np.unique(y))
        if classes < 2:
            raise DataError(f"LDA needs at least two classes; the labels hold {classes}.")
        self._cap_components(min(classes - 1, X.shape[1]), "LDA gives at most classes - 1")
        self.estimator = LinearDiscriminantAnalysis(n_components=self.n_components).fit(X, y)
        return self


class TSNEBaseline(Baseline):
    """Barnes-Hut t-SNE. It cannot embed new points, so train and test are embedded together
    (at most ``max_points`` of them, train and test subsampled in proportion, seeded)."""

    name = "tsne"
    transductive = True

    def __init__(self, n_components: int, seed: int = 0, perplexity: float = 30.0, max_points: int = 10000):
        super().__init__(n_components, seed)
        self.perplexity, self.max_points = float(perplexity), int(max_points)
        if self.requested > 3:
            raise SkipMethod(
                f"t-SNE at {self.requested} dims: Barnes-Hut t-SNE gives at most 3 and exact t-SNE costs O(n^2) per step"
            )

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "TSNEBaseline":
        raise ConfigError("t-SNE cannot embed new points after fitting; use embed_together(X_train, X_test).")

    def embed_together(self, X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(Z_train, Z_test, train_idx, test_idx): the embeddings of the rows train_idx / test_idx."""
        from sklearn.manifold import TSNE

        n_tr, n_te = X_train.shape[0], X_test.shape[0]
        idx_tr, idx_te = np.arange(n_tr), np.arange(n_te)
        rng = np.random.default_rng(self.seed)
        if n_tr + n_te > self.max_points:
            k_te = max(1, round(self.max_points * n_te / (n_tr + n_te)))
            idx_tr = np.sort(rng.choice(n_tr, self.max_points - k_te, replace=False))
            idx_te = np.sort(rng.choice(n_te, k_te, replace=False))
            self.notes.append(f"subsample of {len(idx_tr)} train + {len(idx_te)} test points")
        self.notes.append("train and test embedded together (t-SNE has no transform of new data)")
        both = np.concatenate([X_train[idx_tr], X_test[idx_te]])
        perplexity = min(self.perplexity, (both.shape[0] - 1) / 3.0)
        Z = TSNE(self.n_components, perplexity=perplexity, init="pca", learning_rate="auto",
                 random_state=self.seed).fit_transform(both)
        return Z[: len(idx_tr)], Z[len(idx_tr):], idx_tr, idx_te


class UMAPBaseline(Baseline):
    """UMAP (umap-learn, the optional ``umap`` extra). Its inverse transform triangulates the
    embedding (Delaunay), so it exists only for 2-D embeddings, and is slow: Python loops over the
    triangulation of all training points (minutes for 50k) and per reconstructed point. So it
    reconstructs at most ``inverse_max_points`` test points (None: all), and ``inverse=False``
    turns it off."""

    name = "umap"

    def __init__(self, n_components: int, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1,
                 inverse: bool = True, inverse_max_points: int | None = 1000):
        super().__init__(n_components, seed)
        self.n_neighbors, self.min_dist, self.inverse = int(n_neighbors), float(min_dist), bool(inverse)
        self.inverse_max_points = None if inverse_max_points is None else int(inverse_max_points)
        try:
            import umap  # noqa: F401
        except ImportError:
            raise SkipMethod("umap-learn is not installed (pip install 'aekit[umap]')") from None

    @property
    def has_inverse(self) -> bool:  # type: ignore[override]
        return self.inverse and self.n_components == 2

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "UMAPBaseline":
        import umap

        self.estimator = umap.UMAP(n_components=self.n_components, n_neighbors=self.n_neighbors,
                                   min_dist=self.min_dist, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs.*")  # a fixed seed runs single-threaded, by design
            self.estimator.fit(X)
        if not self.inverse:
            self.notes.append("inverse transform not run (inverse=False)")
        elif self.n_components != 2:
            self.notes.append("no inverse: umap-learn's inverse transform triangulates the embedding, which needs 2-D")
        return self

    def fit_transform(self, X: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        return self.fit(X, y).estimator.embedding_  # the fit already embeds the training points

    def transform(self, X: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs.*")
            return self.estimator.transform(X)


BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls for cls in (PCABaseline, NMFBaseline, KernelPCABaseline, LDABaseline, TSNEBaseline, UMAPBaseline)
}


def check_options(name: str, options: dict[str, Any]) -> None:
    """Raise ConfigError for an unknown baseline or an option its constructor does not take."""
    import inspect

    if name not in BASELINES:
        raise ConfigError(f"Unknown baseline {name!r}; known baselines: {', '.join(BASELINES)}.")
    allowed = set(inspect.signature(BASELINES[name].__init__).parameters) - {"self", "n_components", "seed"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"Unknown option {unknown[0]!r} for {name}; known options: {', '.join(sorted(allowed)) or 'none'}.")


def make_baseline(name: str, n_components: int, seed: int = 0, **options: Any) -> Baseline:
    """Build the baseline called ``name``; ``options`` are its constructor's keyword arguments."""
    check_options(name, options)
    return BASELINES[name](n_components, seed, **options)
