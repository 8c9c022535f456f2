"""scikit-learn estimators: the library's own estimator checks, the contract a user relies on
(Pipeline, GridSearchCV, pickle, clone, float32, save/load) and the mathematics: a linear
autoencoder reaches PCA's reconstruction error and subspace (Baldi & Hornik 1989), and the VAE
score is the ELBO recomputed with torch.distributions."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from aekit.errors import CheckpointError, ConfigError, DataError
from aekit.sklearn import AutoencoderReducer, VAEReducer

# Check-time training is tiny: the checks test the API, not the fit.
TINY = dict(hidden_dims=(8,), max_epochs=2, batch_size=64)


def expected_failed_checks(estimator):
    return {}  # every scikit-learn check passes; nothing is marked as an expected failure


@parametrize_with_checks([AutoencoderReducer(**TINY), VAEReducer(**TINY)], expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def test_linear_autoencoder_reaches_pca(digits):
    X, _ = digits
    pca = PCA(4).fit(X)
    pca_mse = float(np.mean((pca.inverse_transform(pca.transform(X)) - X) ** 2))
    ae = AutoencoderReducer(n_components=4, hidden_dims=(), model_options={"activation": "identity", "likelihood": "gaussian"},
                            max_epochs=200, learning_rate=1e-2, batch_size=256, random_state=0).fit(X)
    ae_mse = -ae.score(X)
    # PCA is the best rank-4 affine reconstruction, so the linear AE can approach it but not beat it.
    assert pca_mse * (1 - 1e-4) <= ae_mse <= pca_mse * 1.03
    # The decoder's image spans the principal subspace: cosines of the principal angles near 1.
    basis = ae.inverse_transform(np.eye(4, dtype=np.float32)) - ae.inverse_transform(np.zeros((1, 4), np.float32))
    q_ae, _ = np.linalg.qr(basis.T.astype(np.float64))
    cosines = np.linalg.svd(pca.components_ @ q_ae, compute_uv=False)
    assert cosines.min() > 0.98


def test_score_is_negative_reconstruction_mse(digits):
    X, _ = digits
    ae = AutoencoderReducer(n_components=3, hidden_dims=(16,), max_epochs=3, random_state=0).fit(X)
    recon = ae.inverse_transform(ae.transform(X))
    assert ae.score(X) == pytest.approx(-np.mean((recon.astype(np.float64) - X) ** 2), rel=1e-5)


def test_vae_score_is_the_elbo(digits):
    X, _ = digits
    vae = VAEReducer(n_components=3, hidden_dims=(16,), max_epochs=3, random_state=0).fit(X)
    m = vae.model_
    x = torch.from_numpy(X)
    with torch.no_grad():
        lat = m.encode(x)
        q = torch.distributions.Normal(lat.mean, lat.std)
        prior = torch.distributions.Normal(torch.zeros_like(lat.mean), torch.ones_like(lat.mean))
        kl = torch.distributions.kl_divergence(q, prior).sum(1)
        gen = torch.Generator().manual_seed(1)
        z = lat.mean + lat.std * torch.randn((64, *lat.mean.shape), generator=gen)  # (64, N, 3)
        logits = m.decode(z.reshape(-1, 3)).loc.reshape(64, *x.shape)
        log_px = torch.distributions.Bernoulli(logits=logits, validate_args=False).log_prob(x).sum(-1).mean(0)
    elbo = float((log_px - kl).mean())
    # One Monte-Carlo sample per example in score, 64 here: they agree to the Monte-Carlo error.
    assert vae.score(X) == pytest.approx(elbo, abs=0.3)
    assert vae.score(X) == vae.score(X)  # seeded: repeatable
    assert np.allclose(vae.transform(X), lat.mean.numpy(), atol=1e-6)  # transform is the posterior mean


def test_float32_preserved_and_float64_kept(digits):
    X, _ = digits
    ae = AutoencoderReducer(n_components=2, **TINY, random_state=0).fit(X)
    assert ae.transform(X).dtype == np.float32
    assert ae.transform(X.astype(np.float64)).dtype == np.float64
    assert ae.inverse_transform(ae.transform(X)).dtype == np.float32


def test_pipeline_and_grid_search(digits):
    X, y = digits
    pipe = Pipeline([("ae", AutoencoderReducer(n_components=8, hidden_dims=(32,), max_epochs=8, random_state=0)),
                     ("clf", LogisticRegression(max_iter=500))])
    pipe.fit(X[:1200], y[:1200])
    assert pipe.score(X[1200:], y[1200:]) > 0.5  # 10 classes: chance is 0.1
    assert list(pipe[:-1].get_feature_names_out()) == [f"autoencoderreducer{i}" for i in range(8)]
    grid = GridSearchCV(AutoencoderReducer(hidden_dims=(32,), max_epochs=8, random_state=0),
                        {"n_components": [1, 8]}, cv=2).fit(X)
    # More latent dimensions reconstruct held-out folds better: the grid must pick 8.
    assert grid.best_params_ == {"n_components": 8}


def test_pickle_clone_and_save_pretrained(digits, tmp_path):
    X, _ = digits
    for est in (AutoencoderReducer(n_components=2, **TINY, random_state=0), VAEReducer(n_components=2, **TINY, random_state=0)):
        est.fit(X)
        z = est.transform(X)
        again = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(again.transform(X), z)
        fresh = clone(est)
        assert not hasattr(fresh, "model_") and fresh.get_params() == est.get_params()
        out = tmp_path / type(est).__name__
        est.save_pretrained(out)
        assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "estimator.json"}
        loaded = type(est).from_pretrained(out)
        np.testing.assert_array_equal(loaded.transform(X), z)
        assert loaded.get_params() == est.get_params()
    with pytest.raises(CheckpointError):
        AutoencoderReducer.from_pretrained(tmp_path / "VAEReducer")  # holds a VAEReducer
    with pytest.raises(CheckpointError):
        VAEReducer.from_pretrained(tmp_path / "missing")
    meta_path = tmp_path / "VAEReducer" / "estimator.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "params": {**meta["params"], "n_components": 5}}))
    with pytest.raises(CheckpointError, match="do not belong together"):
        VAEReducer.from_pretrained(tmp_path / "VAEReducer")
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "n_features_in_"}))
    with pytest.raises(CheckpointError, match="lacks a valid n_features_in_"):
        VAEReducer.from_pretrained(tmp_path / "VAEReducer")


def test_pickle_does_not_pickle_torch_modules(digits):
    X, _ = digits
    est = AutoencoderReducer(n_components=2, **TINY, random_state=0).fit(X)
    state = est.__getstate__()
    assert "model_" not in state and isinstance(state["_module_blobs"]["model_"]["weights"], bytes)
    assert hasattr(est, "model_")  # getting the state must not strip the live estimator
    # the states earlier versions pickled still load: the reducers' one blob, the semi-supervised packs
    from aekit.semi_sklearn import _Packed

    old = {k: v for k, v in state.items() if k != "_module_blobs"}
    again = AutoencoderReducer.__new__(AutoencoderReducer)
    again.__setstate__({**old, "_model_blob": state["_module_blobs"]["model_"]})
    np.testing.assert_array_equal(again.transform(X[:5]), est.transform(X[:5]))
    packed = _Packed.__new__(_Packed)
    packed.__dict__.update({k: v for k, v in state["_module_blobs"]["model_"].items() if k != "training"})
    again = AutoencoderReducer.__new__(AutoencoderReducer)
    again.__setstate__({**old, "model_": packed})
    np.testing.assert_array_equal(again.transform(X[:5]), est.transform(X[:5]))
    assert not again.model_.training


def test_random_state_reproducible_and_rng_untouched(digits):
    X, _ = digits
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = AutoencoderReducer(n_components=2, **TINY, random_state=7).fit_transform(X)
    assert torch.equal(torch.rand(3), expected)  # the caller's torch RNG is left as it was
    b = AutoencoderReducer(n_components=2, **TINY, random_state=7).fit_transform(X)
    c = AutoencoderReducer(n_components=2, **TINY, random_state=8).fit_transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_conv_model_reads_rows_as_images(digits):
    X, _ = digits
    est = AutoencoderReducer(n_components=3, hidden_dims=(16,), max_epochs=1, random_state=0,
                             model_options={"architecture": "conv", "conv_channels": [4, 8], "input_shape": [1, 8, 8]}).fit(X)
    assert est.transform(X).shape == (len(X), 3)
    assert est.inverse_transform(est.transform(X[:5])).shape == (5, 64)


def test_user_errors(digits):
    X, _ = digits
    with pytest.raises(ConfigError, match="n_components"):
        AutoencoderReducer(n_components=0).fit(X)
    with pytest.raises(ConfigError, match="latent_dim"):
        AutoencoderReducer(model_options={"latent_dim": 3}).fit(X)
    with pytest.raises(ConfigError, match="input_shape"):
        AutoencoderReducer(model_options={"input_shape": [1, 7, 7]}).fit(X)
    with pytest.raises(ConfigError, match="Unknown option 'nonsense'"):
        AutoencoderReducer(model_options={"nonsense": 1}).fit(X)
    with pytest.raises(ConfigError, match="no likelihood"):
        VAEReducer(model="ae").fit(X)
    with pytest.raises(ConfigError, match="Unknown model"):
        AutoencoderReducer(model="no-such-model").fit(X)
    with pytest.raises(ConfigError, match="set learning_rate instead"):
        AutoencoderReducer(train_options={"lr": 0.1}).fit(X)
    with pytest.raises(ConfigError, match="Unknown option 'nonsense' for TrainConfig"):
        VAEReducer(train_options={"nonsense": 1}).fit(X)
    with pytest.raises(ConfigError, match="train_options"):
        AutoencoderReducer(train_options="cosine").fit(X)


def test_label_models_in_reducers_and_fitted_sizes(digits):
    """Stacked models learn any labels through classes_; M2 is sent to M2Classifier; conditions must be
    finite; a [0, 1] decoder refuses other data; changing a parameter after fit does not break the fit."""
    X, y = digits
    X, names = X[:300], np.array(list("abcdefghij"))[y[:300]]
    with pytest.raises(ConfigError, match="use aekit.sklearn.M2Classifier"):
        VAEReducer(model="m2").fit(X, y[:300])
    stacked = AutoencoderReducer(model="stacked_ae", hidden_dims=(16,), max_epochs=1, random_state=0).fit(X, names)
    assert list(stacked.classes_) == list("abcdefghij") and stacked.model_.config.num_classes == 10
    assert stacked.transform(X[:5]).shape == (5, 2)
    with pytest.raises(DataError, match="learns from labels"):
        AutoencoderReducer(model="stacked_ae", max_epochs=1).fit(X)
    labels = y[:300].astype(float)
    labels[3] = np.nan
    with pytest.raises(DataError, match="missing"):
        VAEReducer(model="cvae", max_epochs=1).fit(X, labels)
    with pytest.raises(DataError, match="finite"):
        VAEReducer(model="cvae", max_epochs=1).fit(X, np.full((300, 2), np.nan))
    with pytest.raises(DataError, match=r"likelihood='bernoulli' needs x in \[0, 1\]"):
        VAEReducer(model_options={"likelihood": "bernoulli"}, max_epochs=1).fit(X * 16)
    ae = AutoencoderReducer(hidden_dims=(16,), max_epochs=1, random_state=0).fit(X)
    before = ae.transform(X[:5])
    ae.set_params(n_components=5)                       # not refitted: the fitted model still answers
    np.testing.assert_array_equal(ae.transform(X[:5]), before)
    assert ae.inverse_transform(before).shape == (5, 64)


def test_train_options_reach_the_trainer_and_survive_saving(digits, tmp_path):
    X, _ = digits
    est = VAEReducer(**{**TINY, "max_epochs": 4}, random_state=0, train_options={"schedule": "cosine", "min_lr": 1e-5}).fit(X)
    lrs = [row["lr"] for row in est.history_]
    cosine = [1e-5 + (1e-3 - 1e-5) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]  # the lr each epoch ran at
    assert lrs == pytest.approx(cosine)
    plain = VAEReducer(**{**TINY, "max_epochs": 4}, random_state=0).fit(X)
    assert {row["lr"] for row in plain.history_} == {1e-3}
    again = VAEReducer.from_pretrained(est.save_pretrained(tmp_path / "est"))
    assert again.get_params() == est.get_params()
    np.testing.assert_allclose(again.transform(X[:5]), est.transform(X[:5]), atol=1e-6)


def test_conditional_vae_encodes_and_decodes_given_the_label(digits, tmp_path):
    """cvae in VAEReducer: labels of any type in fit, transform, inverse_transform and score; a code
    decoded with another label draws that class; refusals for a missing or unseen label."""
    X, y = digits
    names = np.array(list("abcdefghij"))[y]
    est = VAEReducer(model="cvae", n_components=2, hidden_dims=(64,), max_epochs=15, random_state=0).fit(X, names)
    assert est.model_.config.num_classes == 10 and list(est.classes_) == list("abcdefghij")
    Z = est.transform(X[:200], names[:200])
    assert Z.shape == (200, 2)
    assert not np.allclose(Z, est.transform(X[:200], np.roll(names[:200], 1)))   # the code depends on y
    np.testing.assert_allclose(est.fit_transform(X, names)[:5], est.transform(X[:5], names[:5]), atol=1e-6)
    # decode every test code as class "a" and as class "b": a classifier on the inputs tells them apart
    clf = LogisticRegression(max_iter=2000).fit(X, y)
    as_a = clf.predict(est.inverse_transform(Z, np.full(200, "a")))
    as_b = clf.predict(est.inverse_transform(Z, np.full(200, "b")))
    assert np.mean(as_a == 0) > 0.6 and np.mean(as_b == 1) > 0.6
    assert np.isfinite(est.score(X[:50], names[:50]))
    with pytest.raises(ConfigError, match="conditional"):
        est.transform(X[:5])
    with pytest.raises(ValueError, match="not seen in fit"):
        est.transform(X[:2], np.array(["a", "z"]))
    again = VAEReducer.from_pretrained(est.save_pretrained(tmp_path / "cvae"))
    np.testing.assert_allclose(again.transform(X[:5], names[:5]), est.transform(X[:5], names[:5]), atol=1e-6)


def test_vqvae_reducer_codes_are_codebook_vectors_of_every_position(digits, tmp_path):
    X, _ = digits
    X = X[:300]
    est = AutoencoderReducer(n_components=3, model="vqvae", hidden_dims=(32,), max_epochs=2, batch_size=64,
                             model_options={"num_codes": 16, "latent_positions": 4, "prior": "uniform"},
                             random_state=0).fit(X)
    Z = est.transform(X)
    assert Z.shape == (300, 4 * 3)   # n_components is one code vector's size; four positions
    codebook = est.model_.codebook.numpy()
    for row in Z.reshape(-1, 3)[:50]:
        assert np.isclose(codebook, row).all(1).any()
    with torch.no_grad():
        recon = est.model_.reconstruct(torch.as_tensor(X)).numpy().reshape(300, -1)
    np.testing.assert_allclose(est.inverse_transform(Z), recon, rtol=1e-5, atol=1e-6)
    est.save_pretrained(tmp_path / "vq")
    np.testing.assert_array_equal(type(est).from_pretrained(tmp_path / "vq").transform(X), Z)
