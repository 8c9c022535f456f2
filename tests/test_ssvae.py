"""M2, M1 and M1+M2 (Kingma, Rezende, Mohamed & Welling 2014): the objective against explicit
class-by-class sums and torch.distributions, the label helpers, the scikit-learn classifiers, the
analogy figure and ``aekit train --labels``."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Categorical, Normal, kl_divergence

from aekit import ConfigError, DataError
from aekit.models.ssvae import M2, M2Config
from aekit.semi import M1M2, labelled_subset, oversample_labelled


def tiny_m2(**extra) -> M2:
    torch.manual_seed(0)
    opts = {"input_shape": (1, 8, 8), "latent_dim": 3, "hidden_dims": (16,), "num_classes": 10, **extra}
    return M2(M2Config.from_dict(opts)).eval()


def explicit_elbo(model: M2, x: torch.Tensor, c: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """L(x, c) written out with torch.distributions, given eps (L, N, D): (N,)."""
    lat = model.encode(x, c)
    q = Normal(lat.mean, lat.std)
    z = lat.mean + lat.std * eps                                         # (L, N, D)
    log_px = torch.stack([Bernoulli(logits=model.decode(zl, c).loc, validate_args=False).log_prob(x).flatten(1).sum(1) for zl in z])
    kl = kl_divergence(q, Normal(torch.zeros_like(lat.mean), torch.ones_like(lat.mean))).sum(1)
    return log_px.mean(0) - kl + math.log(1.0 / model.config.num_classes)


def test_first_layer_split_equals_the_concatenated_linear_layer(digits_batch):
    x, y = digits_batch
    model = tiny_m2()
    lin = model.encoder_x.mlp[0]                                         # Linear(64, 16)
    weight = torch.cat([lin.weight, model.encoder_y.t()], dim=1)         # (16, 64 + 10)
    h = F.linear(torch.cat([x.flatten(1), F.one_hot(y, 10).float()], 1), weight, lin.bias)
    mean, logvar = model.encoder_trunk(h).chunk(2, 1)
    lat = model.encode(x, y)
    torch.testing.assert_close(lat.mean, mean)
    torch.testing.assert_close(lat.logvar, logvar)


def test_marginal_over_y_equals_the_explicit_sum_class_by_class(digits_batch):
    x, y = digits_batch
    x, y = x[:12], y[:12].clone()
    y[[1, 2, 5, 6, 7, 10]] = -1                                         # a mixed batch
    model = tiny_m2(n_samples=2)
    elbo = model.elbo(x, y, generator=torch.Generator().manual_seed(3))
    lab, unl = (y >= 0).nonzero().squeeze(1), (y < 0).nonzero().squeeze(1)
    n_l, n_u, k = lab.numel(), unl.numel(), 10
    # The model draws one eps block (L, R, D): labelled rows, then unlabelled rows class after class.
    eps = torch.randn((2, n_l + k * n_u, 3), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want_l = explicit_elbo(model, x[lab], y[lab], eps[:, :n_l])
        per_class = torch.stack([
            explicit_elbo(model, x[unl], torch.full((n_u,), c), eps[:, n_l + c * n_u: n_l + (c + 1) * n_u])
            for c in range(k)
        ], dim=1)                                                        # (N_u, C): the test loops, the model does not
        q = Categorical(logits=model.class_logits(x[unl]))
        want_u = (q.probs * per_class).sum(1) + q.entropy()
        torch.testing.assert_close(elbo[lab], want_l, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(elbo[unl], want_u, rtol=1e-5, atol=1e-4)
        # U(x) <= log sum_y exp L(x, y), and the gap is exactly KL(q(y|x) || p(y|x) under L).
        lse = torch.logsumexp(per_class, dim=1)
        assert bool((elbo[unl] <= lse + 1e-4).all())
        gap = kl_divergence(q, Categorical(logits=per_class))
        torch.testing.assert_close(lse - elbo[unl], gap, rtol=1e-4, atol=1e-4)


def test_importance_weights_average_to_the_elbo(digits_batch):
    x, y = digits_batch
    x, y = x[:4], y[:4].clone()
    y[2:] = -1
    model = tiny_m2(n_samples=2000)
    with torch.no_grad():
        log_w = model.log_importance_weights(x, 4000, y, generator=torch.Generator().manual_seed(0))   # (k, N)
        elbo = model.elbo(x, y, generator=torch.Generator().manual_seed(1))
    assert log_w.shape == (4000, 4)
    # E_q[log w] is the ELBO: L(x, y) where y is given, U(x) (y drawn from q(y|x)) where it is not.
    torch.testing.assert_close(log_w.mean(0), elbo, rtol=0, atol=0.5)
    assert bool((torch.logsumexp(log_w, 0) - math.log(4000) >= elbo).all())


def test_labelled_loss_is_the_closed_form_pieces(digits_batch):
    x, y = digits_batch
    x, y = x[:16], y[:16]
    model = tiny_m2(alpha=0.7)
    out = model(x, y, generator=torch.Generator().manual_seed(5))
    assert out.rows.shape[0] == 16                                        # supervised-only: no expansion
    lo = model.loss(x, out, y)
    eps = torch.randn((1, 16, 3), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        elbo = explicit_elbo(model, x, y, eps)
        ce = F.cross_entropy(model.class_logits(x), y)
    torch.testing.assert_close(lo.total.detach(), -elbo.mean() + 0.7 * ce, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(lo.terms["classification"], ce)
    torch.testing.assert_close(lo.terms["elbo"], elbo.mean(), rtol=1e-5, atol=1e-4)


def test_classification_term_is_a_mean_over_labelled_rows(digits_batch):
    x, y = digits_batch
    x, y = x[:20], y[:20].clone()
    y[5:] = -1
    model = tiny_m2()
    gen = torch.Generator().manual_seed(0)
    lo_a = model.loss(x, model(x, y, generator=gen), y)
    model_b = tiny_m2(alpha=0.0)
    lo_b = model_b.loss(x, model_b(x, y, generator=torch.Generator().manual_seed(0)), y)
    ce = F.cross_entropy(model.class_logits(x[:5]), y[:5]).detach()
    torch.testing.assert_close(lo_a.total.detach() - lo_b.total.detach(), 0.1 * ce, rtol=1e-4, atol=1e-5)


def test_posterior_inputs_are_sampled_in_training_and_averaged_otherwise():
    model = M2(M2Config(input_shape=(4,), latent_dim=2, hidden_dims=(8,), num_classes=3, likelihood="gaussian",
                        input_noise="gaussian"))
    mean, logvar = torch.randn(5, 4), torch.randn(5, 4)
    x = torch.stack([mean, logvar], 1)                                    # (N, 2, d)
    model.train()
    out = model(x, torch.tensor([0, 1, -1, 2, -1]), generator=torch.Generator().manual_seed(1))
    eps = torch.randn((5, 4), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out.x, mean + torch.exp(0.5 * logvar) * eps)
    torch.testing.assert_close(model.embed(x), model.embed(mean))         # embed and predict use the mean
    torch.testing.assert_close(model.predict_proba(x), model.predict_proba(mean))
    model.eval()
    torch.testing.assert_close(model(x).x, mean)


def test_small_initialization_as_in_the_authors_code(digits_batch):
    model = tiny_m2(input_shape=(1, 8, 8), hidden_dims=(300,), latent_dim=40, init_std=1e-3)
    weights = torch.cat([m.weight.detach().flatten() for m in model.modules() if isinstance(m, torch.nn.Linear)])
    assert abs(float(weights.std()) - 1e-3) < 1e-4 and all(
        float(m.bias.detach().abs().max()) == 0.0 for m in model.modules() if isinstance(m, torch.nn.Linear))
    with torch.no_grad():
        lat, probs = model.encode(*digits_batch), model.predict_proba(digits_batch[0])
    assert float(lat.logvar.abs().max()) < 1e-6          # q(z|x,y) starts at unit variance
    assert float(lat.mean.abs().max()) > 0.0
    torch.testing.assert_close(probs, torch.full_like(probs, 0.1), atol=1e-2, rtol=0)   # and q(y|x) uniform
    assert M2Config.from_dict(model.config.to_dict()).init_std == 1e-3
    flat = tiny_m2(input_shape=(1, 8, 8), hidden_dims=(), latent_dim=4, init_std=1e-3)   # no hidden layer
    with torch.no_grad():
        assert float(flat.encode(*digits_batch).logvar.abs().max()) == 0.0
    with pytest.raises(ConfigError, match="init_std"):
        M2Config(input_shape=(4,), init_std=0.0)


def test_predict_proba_sums_to_one_and_sampling_is_conditional(digits_batch):
    x, _ = digits_batch
    model = tiny_m2()
    p = model.predict_proba(x)
    assert p.shape == (64, 10) and bool((p >= 0).all())
    torch.testing.assert_close(p.sum(1), torch.ones(64))
    assert model.sample(4, 3).shape == (4, 1, 8, 8)
    a = model.sample(6, generator=torch.Generator().manual_seed(2))    # y ~ p(y) when not given
    assert a.shape == (6, 1, 8, 8) and torch.isfinite(a).all()
    with pytest.raises(DataError, match="label"):
        model(x[:4], torch.tensor([0, 1, 10, -1]))


def test_labelled_subset_is_balanced_and_seeded():
    y = torch.arange(1000) % 10
    out = labelled_subset(y, 100, seed=3)
    kept = out >= 0
    assert int(kept.sum()) == 100
    assert torch.equal(torch.bincount(out[kept], minlength=10), torch.full((10,), 10))
    assert torch.equal(out[kept], y[kept]) and bool((out[~kept] == -1).all())
    assert torch.equal(out, labelled_subset(y, 100, seed=3))
    assert not torch.equal(out, labelled_subset(y, 100, seed=4))
    odd = labelled_subset(y.numpy(), 23, seed=0)                          # numpy in, numpy out
    assert isinstance(odd, np.ndarray) and (odd >= 0).sum() == 23
    counts = np.bincount(odd[odd >= 0], minlength=10)
    assert counts.max() - counts.min() <= 1
    with pytest.raises(ConfigError, match="fewer than the 10 classes"):
        labelled_subset(y, 5, seed=0)
    with pytest.raises(DataError, match="2000 balanced labels need 200 examples of class"):
        labelled_subset(y, 2000, seed=0)


def test_api_user_errors_and_unsigned_labels(digits_batch):
    from aekit.semi import fit_m1_m2
    from aekit.semi_sklearn import M2Classifier

    y8 = (np.arange(100) % 10).astype(np.uint8)      # MNIST's labels as numpy reads them
    sub = labelled_subset(y8, 20, seed=0)
    assert sub.dtype == np.int64 and set(np.unique(sub)) == {-1, *range(10)}
    x = torch.rand(100, 6)
    with pytest.raises(DataError, match="every label is -1"):   # before M1 is trained
        fit_m1_m2(x, torch.full((100,), -1), num_classes=10)
    X = np.random.default_rng(0).random((60, 6)).astype(np.float32)
    lab = np.where(np.arange(60) < 20, np.arange(60) % 2, -1)
    for bad, match in (({"hidden_dims": 16}, "hidden_dims=16 must be a list"), ({"alpha": "x"}, "alpha='x'"),
                       ({"latent_dim": 2.7}, "latent_dim=2.7 must be a positive integer"),
                       ({"model_options": [1]}, "model_options=\\[1\\] must be a dict"),
                       ({"learning_rate": "x"}, "learning_rate='x'")):
        with pytest.raises(ConfigError, match=match):
            M2Classifier(**bad).fit(X, lab)
    clf = M2Classifier(hidden_dims=(8,), latent_dim=2, max_epochs=1, random_state=0).fit(X, lab)
    clf.set_params(stack_m1=True)                      # not refitted: predict uses the model as fitted
    assert clf.predict(X[:4]).shape == (4,)


def test_oversampling_reaches_the_fraction_and_copies_rows():
    x = torch.randn(1000, 3)
    y = labelled_subset(torch.arange(1000) % 10, 20, seed=0)
    x2, y2 = oversample_labelled(x, y, labelled_fraction=0.2)
    share = float((y2 >= 0).float().mean())
    assert abs(share - 0.2) < 0.02
    assert torch.equal(x2[:1000], x) and torch.equal(y2[:1000], y)
    lab = (y >= 0).nonzero().squeeze(1)
    torch.testing.assert_close(x2[1000:1000 + lab.numel()], x[lab])
    full = torch.arange(10) % 3
    assert oversample_labelled(torch.randn(10, 2), full)[0].shape[0] == 10   # all labelled: unchanged


def test_fit_m2_resumed_from_its_run_folder_equals_one_sitting(digits_batch, tmp_path):
    """Checkpoints and their continuation reach M2 through fit_m2: the labelled rows are repeated the
    same way in the second sitting, so two sittings give the weights of one."""
    from aekit.config import TrainConfig
    from aekit.semi import fit_m2

    x, labels = digits_batch
    y = labelled_subset(labels, 10, seed=0)

    def run(epochs: int, model: M2, **kw) -> M2:
        return fit_m2(x, y, model=model.train(), labelled_fraction=0.3,
                      train_config=TrainConfig(epochs=epochs, batch_size=16, progress=False, seed=3), **kw)

    straight = run(3, tiny_m2())
    run(1, tiny_m2(), run_dir=tmp_path / "m2")
    other_start = tiny_m2()
    with torch.no_grad():   # the second sitting must start from the checkpoint, not from the model it is given
        for p in other_start.parameters():
            p.add_(torch.randn_like(p))
    resumed = run(3, other_start, run_dir=tmp_path / "m2", resume=True)
    assert len((tmp_path / "m2" / "metrics.csv").read_text().strip().splitlines()) == 1 + 3
    assert int(resumed.train_step) == int(straight.train_step) > 0
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    untrained = tiny_m2().state_dict()
    assert any(not torch.equal(untrained[k], v) for k, v in resumed.state_dict().items())   # it did train


def test_evaluation_scores_the_density_of_x_alone(digits_batch):
    """M2 predicts y, so ``evaluate_model`` reports log p(x) = log sum_y p(x, y), not log p(x, y) of the
    test labels: the estimate equals the unlabelled one and exceeds the labelled one (p(x) >= p(x, y))."""
    from aekit.evaluate import evaluate_model, log_likelihood

    x, y = digits_batch
    model = tiny_m2()
    m = evaluate_model(model, x, y, k=200)
    unlabelled = log_likelihood(model, x, k=200, y=None).mean()
    labelled = log_likelihood(model, x, k=200, y=y).mean()
    assert m["log_likelihood"] == pytest.approx(float(unlabelled), rel=1e-6)
    assert float(unlabelled) > float(labelled)
    with torch.no_grad():
        elbo = model.elbo(x, None, generator=torch.Generator().manual_seed(0)).mean()
    assert m["elbo"] == pytest.approx(float(elbo), rel=1e-6)
    assert len(m["kl_per_dim"]) == 3 and 0 <= m["active_units"] <= 3


def test_m2_classifier_with_50_labels_beats_chance_on_digits():
    from aekit.data import load_dataset
    from aekit.semi_sklearn import M2Classifier

    d = load_dataset("digits")
    X, Xt = d.train.x.flatten(1).numpy(), d.test.x.flatten(1).numpy()
    y = labelled_subset(d.train.y.numpy(), 50, seed=0)
    clf = M2Classifier(hidden_dims=(128,), latent_dim=16, max_epochs=8, random_state=0).fit(X, y)
    proba = clf.predict_proba(Xt)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    assert list(clf.classes_) == list(range(10))
    assert clf.score(Xt, d.test.y.numpy()) > 0.5                          # chance is 0.1
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(Xt), proba)


def test_m1_and_m1_m2_classifiers_fit_predict_and_pickle():
    from sklearn.base import clone
    from sklearn.datasets import load_digits

    from aekit.semi_sklearn import M1Classifier, M2Classifier

    X, y = load_digits(return_X_y=True)
    X = (X[:400] / 16.0).astype(np.float32)
    names = np.array(list("abcdefghij"))[y[:400]].astype(object)
    names[labelled_subset(y[:400], 40, seed=1) < 0] = -1                  # string classes, -1 unlabelled
    stack = M2Classifier(stack_m1=True, hidden_dims=(16,), latent_dim=4, m1_hidden_dims=(32,), m1_latent_dim=8,
                         m1_max_epochs=2, max_epochs=2, random_state=0).fit(X, names)
    m1 = M1Classifier(hidden_dims=(32,), latent_dim=8, max_epochs=2, random_state=0).fit(X, names)
    for est in (stack, m1):
        assert set(est.predict(X[:20])) <= set("abcdefghij")
        assert list(est.classes_) == list("abcdefghij")
        truth = np.array(list("abcdefghij"))[y[:50]]
        assert est.score(X[:50], truth) == pytest.approx(float(np.mean(est.predict(X[:50]) == truth)))
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X[:20]), est.predict(X[:20]))
        assert clone(est).get_params() == est.get_params()
    assert stack.m1_dims_.ndim == 1 and stack.m1_dims_.size >= 1
    both = M1M2(stack.m1_, torch.from_numpy(stack.m1_dims_), stack.model_)
    a, s = both.analogy_grids(torch.from_numpy(X[:3]), None, n_styles=4, generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 11, 64) and s.shape == (10, 4, 64) and bool(((s >= 0) & (s <= 1)).all())
    torch.testing.assert_close(a[:, 0], torch.from_numpy(X[:3]))
    probs = both.predict_proba(torch.from_numpy(X[:20])).numpy()
    np.testing.assert_allclose(probs, stack.predict_proba(X[:20]), rtol=1e-5, atol=1e-6)
    assert m1.transform(X[:5]).shape == (5, 8)
    assert m1.score(X, np.array(list("abcdefghij"))[y[:400]]) > 0.3      # 2 epochs of M1 and 40 labels; chance 0.1
    assert not hasattr(m1, "predict_proba")                               # SVC() has no probabilities
    # Trainer options reach M1 and M2; the estimator's own parameters cannot be set twice.
    one = M2Classifier(hidden_dims=(16,), latent_dim=4, max_epochs=1, random_state=0).fit(X, names)
    two = M2Classifier(hidden_dims=(16,), latent_dim=4, max_epochs=2, random_state=0).fit(X, names)
    frozen = M2Classifier(hidden_dims=(16,), latent_dim=4, max_epochs=2, random_state=0,   # lr 0 in epoch 2
                          train_options={"schedule": "step", "step_size": 1, "gamma": 0.0}).fit(X, names)
    np.testing.assert_array_equal(frozen.predict_proba(X[:20]), one.predict_proba(X[:20]))
    assert not np.allclose(two.predict_proba(X[:20]), one.predict_proba(X[:20]))
    with pytest.raises(ConfigError, match="set max_epochs instead"):
        M1Classifier(train_options={"epochs": 3}).fit(X, names)


@pytest.mark.parametrize("check", [
    "check_get_params_invariance", "check_set_params", "check_dont_overwrite_parameters",
    "check_estimators_unfitted", "check_classifiers_one_label", "check_n_features_in",
    "check_fit2d_predict1d", "check_classifier_data_not_an_array", "check_supervised_y_2d",
    "check_estimators_nan_inf", "check_estimators_pickle",
])  # not check_classifiers_classes: it uses -1 as a class, which the semi-supervised convention reserves
def test_scikit_learn_estimator_checks(check):
    from sklearn.utils import estimator_checks

    from aekit.semi_sklearn import M2Classifier

    est = M2Classifier(hidden_dims=(8,), latent_dim=2, max_epochs=1, batch_size=32, random_state=0)
    getattr(estimator_checks, check)("M2Classifier", est)


def test_analogy_grids_for_m2_and_cvae(digits_batch, tmp_path):
    from aekit.evaluate.analogy import analogy_grids, save_analogy_figure
    from aekit.models.cvae import CVAE, CVAEConfig

    x, y = digits_batch
    model = tiny_m2()
    a, s = analogy_grids(model, x[:4], None, n_styles=5)                  # labels predicted by q(y|x)
    assert a.shape == (4, 11, 1, 8, 8) and s.shape == (10, 5, 1, 8, 8)
    torch.testing.assert_close(a[:, 0], x[:4])
    z = model.embed(x[:1], torch.tensor([2]))
    torch.testing.assert_close(analogy_grids(model, x[:1], torch.tensor([2]))[0][0, 4],
                               model.decode(z, torch.tensor([3])).mean()[0])
    cvae = CVAE(CVAEConfig(input_shape=(1, 8, 8), latent_dim=2, hidden_dims=(16,), num_classes=10))
    with pytest.raises(DataError, match="labels"):
        analogy_grids(cvae, x[:4], None)
    assert save_analogy_figure(cvae, x[:3], y[:3], tmp_path / "g.png", n_styles=4).is_file()


def test_cli_train_with_labels_then_analogy(tmp_path, capsys):
    from aekit.cli import main

    run = tmp_path / "run"
    args = ["train", "--model", "m2", "--data", "digits", "--labels", "30", "--epochs", "1", "--hidden-dims", "16",
            "--latent-dim", "2", "--seed", "1", "--out", str(run), "--no-progress"]
    assert main(args) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["labels"] == 30 and info["n_train"] > 1258                # labelled rows were oversampled
    assert info["labelled_fraction"] == 0.1
    assert main([*args[:-3], "--out", str(tmp_path / "half"), "--labelled-fraction", "0.5", "--no-progress"]) == 0
    half = json.loads((tmp_path / "half" / "run.json").read_text())
    assert half["labelled_fraction"] == 0.5 and half["n_train"] > 1.5 * info["n_train"]   # about half the rows labelled
    assert main([*args[:5], "--epochs", "1", "--labelled-fraction", "0.5", "--out", str(tmp_path / "x")]) == 2
    assert "needs --labels" in capsys.readouterr().err
    assert main(["analogy", str(run), "--out", str(tmp_path / "grid.png"), "--n", "3", "--styles", "4"]) == 0
    assert (tmp_path / "grid.png").is_file()
    assert main(["train", "--model", "vae", "--data", "digits", "--labels", "30", "--epochs", "1",
                 "--out", str(tmp_path / "vae")]) == 2
    assert "does not learn from labels" in capsys.readouterr().err


def test_m1_m2_with_an_iwae_m1_trains_saves_and_loads(tmp_path):
    from aekit.config import TrainConfig
    from aekit.data import load_dataset
    from aekit.models.ae import AEConfig
    from aekit.models.iwae import IWAE, IWAEConfig
    from aekit.semi import fit_m1, fit_m1_m2

    d = load_dataset("digits")
    x = d.train.x.flatten(1)[:300]
    y = torch.from_numpy(labelled_subset(d.train.y[:300].numpy(), 30, seed=0))
    m1_config = IWAEConfig(input_shape=(64,), latent_dim=6, hidden_dims=(32,), k=3)
    stack = fit_m1_m2(x, y, num_classes=10, m1_config=m1_config, m1_train=TrainConfig(epochs=2, batch_size=50, seed=0),
                      m2_options={"hidden_dims": (16,), "latent_dim": 4}, m2_train=TrainConfig(epochs=1, batch_size=50, seed=0))
    assert isinstance(stack.m1, IWAE) and stack.m1.config.k == 3
    again = M1M2.from_pretrained(stack.save_pretrained(tmp_path / "stack"))
    assert isinstance(again.m1, IWAE)
    torch.testing.assert_close(again.predict_proba(x[:20]), stack.predict_proba(x[:20]))
    with pytest.raises(ConfigError, match="VAEConfig or an IWAEConfig"):
        fit_m1(x, config=AEConfig(input_shape=(64,)))


def test_scikit_learn_classifiers_train_an_iwae_m1_when_k_is_above_one():
    from sklearn.datasets import load_digits

    from aekit.models.iwae import IWAE
    from aekit.models.vae import VAE
    from aekit.semi_sklearn import M1Classifier, M2Classifier

    X, y = load_digits(return_X_y=True)
    X, y = (X[:300] / 16.0).astype(np.float32), labelled_subset(y[:300], 30, seed=0)
    small = {"m1_hidden_dims": (32,), "m1_latent_dim": 8, "m1_max_epochs": 1, "max_epochs": 1,
             "hidden_dims": (16,), "latent_dim": 4, "random_state": 0}
    stack = M2Classifier(stack_m1=True, m1_k=3, **small).fit(X, y)
    assert isinstance(stack.m1_, IWAE) and stack.m1_.config.k == 3
    assert isinstance(M2Classifier(stack_m1=True, **small).fit(X, y).m1_, VAE)
    m1 = M1Classifier(hidden_dims=(32,), latent_dim=8, k=2, max_epochs=1, random_state=0).fit(X, y)
    assert isinstance(m1.m1_, IWAE) and m1.transform(X[:5]).shape == (5, 8)
