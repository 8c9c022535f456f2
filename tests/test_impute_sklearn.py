"""VAEImputer: scikit-learn's estimator checks, and imputation that beats the column mean on digits
with values missing at random."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.impute import SimpleImputer
from sklearn.utils.estimator_checks import parametrize_with_checks

from aekit.errors import ConfigError, DataError
from aekit.sklearn import VAEImputer

TINY = dict(n_components=2, hidden_dims=(8,), k=3, max_epochs=2, n_samples=16)


@parametrize_with_checks([VAEImputer(**TINY)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def holes():
    X = load_digits().data[:600] / 16.0
    rng = np.random.default_rng(0)
    mask = rng.random(X.shape) < 0.3
    return X, np.where(mask, np.nan, X), mask


def test_imputes_better_than_the_column_mean_and_keeps_observed_values(holes):
    X, Xn, mask = holes
    est = VAEImputer(n_components=8, hidden_dims=(64,), k=5, max_epochs=60, learning_rate=3e-3, n_samples=200,
                     random_state=0).fit(Xn)
    filled = est.transform(Xn)
    assert est.likelihood_ == "bernoulli" and not np.isnan(filled).any()
    assert np.array_equal(filled[~mask], X[~mask])
    ours = np.mean((filled[mask] - X[mask]) ** 2)
    mean = np.mean((SimpleImputer().fit_transform(Xn)[mask] - X[mask]) ** 2)
    assert ours < 0.75 * mean, (ours, mean)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.transform(Xn[:20]), est.transform(Xn[:20]))
    assert clone(est).get_params() == est.get_params()


def test_gaussian_for_unbounded_data_and_refusals():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5)) * 10 + 100
    Xn = np.where(rng.random(X.shape) < 0.2, np.nan, X)
    est = VAEImputer(n_components=2, hidden_dims=(16,), k=3, max_epochs=3, n_samples=8, random_state=0).fit(Xn)
    assert est.likelihood_ == "gaussian" and np.isfinite(est.transform(Xn)).all()
    empty = Xn.copy()
    empty[:, 2] = np.nan
    with pytest.raises(DataError, match="Column 2 of X has no observed value"):
        VAEImputer(**TINY).fit(empty)
    with pytest.raises(DataError, match="needs the observed values in"):
        VAEImputer(likelihood="bernoulli", **TINY).fit(Xn)
    with pytest.raises(ConfigError, match="n_samples=0 must be a positive integer"):
        VAEImputer(n_samples=0).fit(Xn)
