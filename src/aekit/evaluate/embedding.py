"""Embedding quality: k-nearest-neighbour accuracy of test codes against train codes, and
trustworthiness (Venna & Kaski 2001), as used to compare reducers in Sainburg, McInnes & Gentner
2021 ("Parametric UMAP"): kNN fitted on the training embeddings and scored on the test
embeddings; trustworthiness with scikit-learn's defaults (5 neighbours) on the first training points.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import DataError


def knn_accuracies(
    z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray, ks: Sequence[int] = (1, 5)
) -> dict[int, float]:
    """Accuracy of majority-vote k-NN classifiers (Euclidean, uniform weights) for each k in ``ks``.

    One neighbour query with the largest k serves every k; a tied vote goes to the smallest label,
    as in scikit-learn's KNeighborsClassifier.
    """
    from sklearn.neighbors import NearestNeighbors

    z_train, z_test = np.asarray(z_train), np.asarray(z_test)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if z_train.shape[0] != y_train.shape[0] or z_test.shape[0] != y_test.shape[0]:
        raise DataError("knn_accuracies needs one label per embedded point, for train and for test.")
    if max(ks) > z_train.shape[0]:
        raise DataError(f"k={max(ks)} neighbours asked for, but only {z_train.shape[0]} training points.")
    classes, y_codes = np.unique(y_train, return_inverse=True)  # labels -> 0..C-1, sorted
    nn = NearestNeighbors(n_neighbors=max(ks)).fit(z_train)
    idx = nn.kneighbors(z_test, return_distance=False)  # (N_test, k_max), nearest first
    neighbour_codes = y_codes[idx]
    out = {}
    for k in ks:
        votes = np.zeros((z_test.shape[0], len(classes)), dtype=np.int64)  # (N_test, C)
        np.add.at(votes, (np.arange(z_test.shape[0])[:, None], neighbour_codes[:, :k]), 1)
        pred = classes[votes.argmax(1)]  # argmax takes the first (smallest) label on a tie
        out[int(k)] = float(np.mean(pred == y_test))
    return out


def trustworthiness(x: np.ndarray, z: np.ndarray, n_neighbors: int = 5, max_points: int | None = 2000) -> tuple[float, int]:
    """scikit-learn's trustworthiness of ``z`` as an embedding of ``x`` on their first ``max_points`` rows.

    It costs an n x n distance matrix and its row-wise sort, hence the cap. Returns (value, rows used).
    """
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    if x.shape[0] != z.shape[0]:
        raise DataError(f"trustworthiness got {x.shape[0]} inputs but {z.shape[0]} embedded points.")
    n = x.shape[0] if max_points is None else min(int(max_points), x.shape[0])
    x2 = np.asarray(x[:n]).reshape(n, -1).astype(np.float64)
    z2 = np.asarray(z[:n]).astype(np.float64)
    return float(sk_trustworthiness(x2, z2, n_neighbors=n_neighbors)), n


class TrustworthinessReference:
    """The input-space half of trustworthiness for the first ``max_points`` rows of ``x``, computed
    once and reused for every embedding of those rows (the n x n distance sort dominates the cost).

    ``ref(z)`` equals ``sklearn.manifold.trustworthiness(x[:n], z[:n], n_neighbors=k)``: the same
    distances, sort and rank formula, T = 1 - 2 / (n k (2n - 3k - 1)) * sum of (rank - k) over the
    embedded k-neighbours that are not input k-neighbours.
    """

    def __init__(self, x: np.ndarray, n_neighbors: int = 5, max_points: int | None = 2000):
        from sklearn.metrics import pairwise_distances

        n = x.shape[0] if max_points is None else min(int(max_points), x.shape[0])
        if n_neighbors >= n / 2:
            raise DataError(f"trustworthiness with n_neighbors={n_neighbors} needs more than {2 * n_neighbors} points; got {n}.")
        self.n, self.k = n, int(n_neighbors)
        dist = pairwise_distances(np.asarray(x[:n]).reshape(n, -1).astype(np.float64))  # (n, n)
        np.fill_diagonal(dist, np.inf)  # a point is not its own neighbour
        order = np.argsort(dist, axis=1)  # (n, n): row i lists the others nearest first
        del dist
        # rank[i, j] = position (1-based) of j among i's input-space neighbours; int32 halves the memory.
        self.rank = np.empty((n, n), dtype=np.int32)
        self.rank[np.arange(n)[:, None], order] = np.arange(1, n + 1, dtype=np.int32)

    def __call__(self, z: np.ndarray) -> float:
        from sklearn.neighbors import NearestNeighbors

        n, k = self.n, self.k
        if z.shape[0] < n:
            raise DataError(f"The embedding has {z.shape[0]} rows; the reference was built on {n}.")
        ind = NearestNeighbors(n_neighbors=k).fit(np.asarray(z[:n], dtype=np.float64)).kneighbors(return_distance=False)
        ranks = self.rank[np.arange(n)[:, None], ind].astype(np.int64) - k  # (n, k)
        return float(1.0 - ranks[ranks > 0].sum() * (2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))))
