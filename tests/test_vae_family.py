"""The variational family: VAE objectives (beta, capacity, warm-up, free bits, L samples), the IWAE
objective with one and two stochastic layers, the conditional VAE, the [0, 1] decoders (continuous
Bernoulli, discretized logistic), latent statistics, figures and latent-space diagnostics.

Every check is against a closed form, torch.distributions or an independent computation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, ContinuousBernoulli, Normal, kl_divergence

from aekit import losses, registry
from aekit.errors import ConfigError, DataError
from aekit.evaluate import diagnostics, figures
from aekit.evaluate.latent import active_units, kl_per_dimension
from aekit.io import from_pretrained
from aekit.models.cvae import CVAE, CVAEConfig
from aekit.models.iwae import IWAE, IWAEConfig
from aekit.models.vae import VAE, VAEConfig


def _binary(n: int = 16, d: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, d), 0.3), generator=torch.Generator().manual_seed(seed))


def _vae(**kw) -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(input_shape=(12,), latent_dim=3, hidden_dims=(16,), **kw))


# -- decoders for [0, 1] intensities --------------------------------------------------------------
def test_continuous_bernoulli_matches_torch_and_integrates_to_one():
    logits = torch.tensor([-30.0, -5.0, -0.7, -1e-3, 0.0, 2e-4, 0.05, 0.3, 4.0, 25.0], dtype=torch.float64)
    x = torch.linspace(0.0, 1.0, 7, dtype=torch.float64)
    L, X = logits.repeat(7, 1), x[:, None].repeat(1, logits.numel())
    ours = losses.continuous_bernoulli_log_norm(L) + (-torch.nn.functional.binary_cross_entropy_with_logits(L, X, reduction="none"))
    ref = ContinuousBernoulli(logits=L, lims=(0.4999999, 0.5000001)).log_prob(X)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(losses.continuous_bernoulli_mean(logits), ContinuousBernoulli(logits=logits, lims=(0.4999999, 0.5000001)).mean, atol=1e-6, rtol=1e-6)
    # An independent check: the density integrates to one (Simpson's rule on 2001 points).
    grid = torch.linspace(0, 1, 2001, dtype=torch.float64)
    for eta in (-6.0, -0.02, 0.0, 0.09, 0.11, 3.0):
        lp = losses.continuous_bernoulli_log_likelihood(torch.full((2001, 1), eta, dtype=torch.float64), grid[:, None])
        w = torch.ones(2001, dtype=torch.float64)
        w[1:-1:2], w[2:-1:2] = 4, 2
        assert float((w * lp.exp()).sum() / 6000) == pytest.approx(1.0, abs=1e-9)
    # Finite gradient at lambda = 1/2 where the closed form is 0/0.
    e = torch.zeros(3, requires_grad=True)
    losses.continuous_bernoulli_log_norm(e).sum().backward()
    assert torch.isfinite(e.grad).all()


def test_continuous_bernoulli_samples_follow_the_distribution():
    eta = torch.tensor([-4.0, 0.0, 1.5, 40.0])
    s = losses.continuous_bernoulli_sample(eta.repeat(20000, 1), torch.Generator().manual_seed(0))
    assert float(s.min()) >= 0 and float(s.max()) <= 1
    mean, sd = losses.continuous_bernoulli_mean(eta), ContinuousBernoulli(logits=eta).stddev
    assert ((s.mean(0) - mean).abs() < 5 * sd / math.sqrt(20000)).all()


def test_discretized_logistic_is_a_distribution_over_256_levels():
    levels = torch.arange(256, dtype=torch.float64) / 255                    # (256,)
    loc = torch.tensor([-0.3, 0.0, 0.2, 0.5004, 0.99, 1.4], dtype=torch.float64)
    log_s = torch.tensor([-7.0, -3.0, -5.0, -1.0, -4.0, 0.5], dtype=torch.float64)
    x = levels[:, None].expand(256, 6)
    lp = torch.stack([losses.discretized_logistic_log_likelihood(x[:, j:j + 1], loc[j].expand(256, 1), log_s[j].expand(256, 1))
                      for j in range(6)], 1)                                  # (256, 6)
    torch.testing.assert_close(lp.exp().sum(0), torch.ones(6, dtype=torch.float64), atol=1e-9, rtol=0)
    # Interior levels against the CDF difference computed directly.
    h, s = 0.5 / 255, log_s.exp()
    direct = torch.sigmoid((x + h - loc) / s) - torch.sigmoid((x - h - loc) / s)
    inner = slice(1, 255)
    ok = direct[inner] > 1e-12
    torch.testing.assert_close(lp[inner][ok].exp(), direct[inner][ok], atol=1e-12, rtol=1e-7)
    # Far tails stay finite.
    far = losses.discretized_logistic_log_likelihood(torch.tensor([[0.5]]), torch.tensor([[-50.0]]), torch.tensor([[-7.0]]))
    assert torch.isfinite(far).all()


@pytest.mark.parametrize("likelihood,variance,discrete", [
    ("bernoulli", "fixed", True), ("gaussian", "learned", False),
    ("continuous_bernoulli", "fixed", False), ("discretized_logistic", "learned", True)])
def test_every_likelihood_trains_in_the_vae(likelihood, variance, discrete):
    x = torch.rand(32, 12, generator=torch.Generator().manual_seed(1))
    x = torch.round(x * 255) / 255
    model = _vae(likelihood=likelihood, decoder_variance=variance)
    out = model(x)
    assert out.recon.is_discrete is discrete and out.recon.sample().shape == x.shape
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        lo = model.loss(x, model(x))
        first = float(lo.total.detach()) if first is None else first
        opt.zero_grad()
        lo.total.backward()
        opt.step()
    last = float(lo.total.detach())
    assert math.isfinite(last) and last < first
    assert model.log_importance_weights(x, 5).shape == (5, 32)


# -- the VAE objective ---------------------------------------------------------------------------
def test_vae_terms_match_torch_distributions():
    model, x = _vae(n_samples=3), _binary()
    out = model(x, generator=torch.Generator().manual_seed(0))
    assert out.z.shape == (3, 16, 3)
    lo = model.loss(x, out)
    q = Normal(out.latent.mean, out.latent.std)
    kl = kl_divergence(q, Normal(0.0, 1.0)).sum(1)
    rec = torch.stack([Bernoulli(logits=model.decode(out.z[l]).loc).log_prob(x).sum(1) for l in range(3)]).mean(0)
    torch.testing.assert_close(lo.terms["kl"], kl.mean().detach())
    torch.testing.assert_close(lo.terms["reconstruction"], -rec.mean().detach())
    torch.testing.assert_close(lo.total, -(rec - kl).mean())


def test_beta_warmup_capacity_and_free_bits_objectives():
    x = _binary()
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731 - the same noise for every variant
    plain = _vae()
    base = plain.loss(x, plain(x, generator=gen()))
    rec, kl = base.terms["reconstruction"], base.terms["kl"]
    beta = _vae(beta=4.0)
    torch.testing.assert_close(beta.loss(x, beta(x, generator=gen())).total, rec + 4.0 * kl)
    warm = _vae(beta=2.0, kl_warmup_steps=100)
    warm.train_step.fill_(25)
    torch.testing.assert_close(warm.loss(x, warm(x, generator=gen())).total, rec + 2.0 * 0.25 * kl)
    warm.eval()  # validation measures the final objective
    torch.testing.assert_close(warm.loss(x, warm(x, generator=gen())).total, rec + 2.0 * kl)
    cap = _vae(capacity_max=20.0, capacity_steps=200, capacity_gamma=50.0)
    cap.train_step.fill_(50)
    torch.testing.assert_close(cap.loss(x, cap(x, generator=gen())).total, rec + 50.0 * (kl - 5.0).abs())
    fb = _vae(free_bits=0.5)
    out = fb(x, generator=gen())
    per_dim = kl_divergence(Normal(out.latent.mean, out.latent.std), Normal(0.0, 1.0)).mean(0)   # (D,)
    torch.testing.assert_close(fb.loss(x, out).total, rec + per_dim.clamp(min=0.5).sum())
    with pytest.raises(ConfigError, match="capacity_max"):
        VAEConfig(capacity_max=5.0, free_bits=0.5)
    for ignored in ({"beta": 4.0}, {"kl_warmup_steps": 100}):   # the capacity loss has no KL weight to set
        with pytest.raises(ConfigError, match="no effect"):
            VAEConfig(capacity_max=5.0, **ignored)


# -- IWAE ----------------------------------------------------------------------------------------
def _iwae(**kw) -> IWAE:
    torch.manual_seed(0)
    return IWAE(IWAEConfig(input_shape=(12,), latent_dim=3, hidden_dims=(16,), intermediate_dim=5,
                           intermediate_hidden_dims=(8,), **kw))


@pytest.mark.parametrize("layers", [1, 2])
def test_iwae_objective_is_the_log_mean_of_the_weights(layers):
    x = _binary()
    iw, vae = _iwae(k=7, n_stochastic_layers=layers), _iwae(k=7, n_stochastic_layers=layers, objective="vae")
    out = iw(x, generator=torch.Generator().manual_seed(0))
    assert out.log_w.shape == (7, 16)
    lw = iw.log_importance_weights(x, 7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.log_w, lw)
    expected = -(torch.logsumexp(lw, 0) - math.log(7)).mean()
    torch.testing.assert_close(iw.loss(x, out).total, expected)
    torch.testing.assert_close(vae.loss(x, vae(x, generator=torch.Generator().manual_seed(0))).total, -lw.mean())
    one = _iwae(k=1, n_stochastic_layers=layers)                         # with k = 1 both objectives agree
    o = one(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(one.loss(x, o).total, -o.log_w.mean())


def test_iwae_k1_weights_average_to_the_analytic_elbo():
    model, x = _iwae(), _binary(4)
    with torch.no_grad():
        out = model._weights(x, 20000, torch.Generator().manual_seed(0))
        kl = losses.gaussian_kl(out.latent.mean, out.latent.logvar)       # analytic
        mc_kl = out.log_px - out.log_w                                     # log q - log p per sample
    se = mc_kl.std(0) / math.sqrt(20000)
    assert ((mc_kl.mean(0) - kl).abs() < 5 * se).all()


def test_iwae_architecture_follows_the_paper():
    one = IWAE(IWAEConfig(input_shape=(784,)))
    dims = [m.out_features for m in one.q1.modules() if isinstance(m, torch.nn.Linear)]
    assert dims == [200, 200, 100] and one.config.activation == "tanh"    # 784-200-200-(50 mean, 50 log-var)
    two = IWAE(IWAEConfig(input_shape=(784,), n_stochastic_layers=2))
    chain = [[m.out_features for m in mod.modules() if isinstance(m, torch.nn.Linear)] for mod in (two.q1, two.q2, two.p1, two.px)]
    assert chain == [[200, 200, 200], [100, 100, 100], [100, 100, 200], [200, 200, 784]]
    assert two.sample(3).shape == (3, 784)
    with pytest.raises(ConfigError, match="n_stochastic_layers"):
        IWAEConfig(n_stochastic_layers=3)


def test_iwae_training_raises_the_bound_and_round_trips(tmp_path):
    x = _binary(64)
    model = _iwae(k=5, n_stochastic_layers=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, eps=1e-4)
    before = float(model.loss(x, model(x)).terms["iwae_bound"])
    for _ in range(40):
        lo = model.loss(x, model(x))
        opt.zero_grad()
        lo.total.backward()
        opt.step()
    assert float(model.loss(x, model(x)).terms["iwae_bound"]) > before + 1.0
    model.save_pretrained(tmp_path / "m")
    again = from_pretrained(tmp_path / "m")
    assert registry.name_of(again) == "iwae"
    torch.testing.assert_close(again.log_importance_weights(x, 3, generator=torch.Generator().manual_seed(1)),
                               model.log_importance_weights(x, 3, generator=torch.Generator().manual_seed(1)))


# -- output bias from the data (Burda et al.'s code) -----------------------------------------------
@pytest.mark.parametrize("likelihood,variance,arch", [("bernoulli", "fixed", "mlp"), ("gaussian", "learned", "mlp"),
                                                        ("bernoulli", "fixed", "conv")])
def test_data_output_bias_starts_the_decoder_at_the_data_mean(likelihood, variance, arch):
    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8) * torch.linspace(0.0, 1.0, 64).reshape(1, 1, 8, 8)
    model = VAE(VAEConfig(input_shape=(1, 8, 8), latent_dim=2, hidden_dims=(16,), likelihood=likelihood,
                          decoder_variance=variance, architecture=arch, conv_channels=(4,), output_bias="data"))
    dec = model.decoder
    last = (dec.deconv if dec.deconv is not None else dec.mlp)[-1]
    with torch.no_grad():
        last.weight.zero_()                    # the output is then the bias alone, whatever z
    model.init_from_data(x)
    mean = model.decode(torch.randn(3, 2)).mean()
    want = x.mean(0).clamp(0.001, 0.999) if likelihood == "bernoulli" else x.mean(0)
    if arch == "conv":                        # one bias per channel: the channel's average pixel
        want = want.mean() if likelihood == "gaussian" else torch.sigmoid(
            (torch.log(want) - torch.log1p(-want)).mean())
    assert torch.allclose(mean, want.expand_as(mean), atol=1e-6)


def test_trainer_sets_the_data_bias_once_before_the_first_step(tmp_path, monkeypatch):
    from aekit.config import TrainConfig
    from aekit.train import fit

    x = torch.rand(40, 12)
    calls = []
    real = IWAE.init_from_data
    monkeypatch.setattr(IWAE, "init_from_data", lambda self, data: (calls.append(len(data)), real(self, data)))
    model = IWAE(IWAEConfig(input_shape=(12,), latent_dim=2, hidden_dims=(8,), k=2))
    assert model.config.output_bias == "data"  # the paper's code: IWAE's default
    tc = TrainConfig(epochs=1, batch_size=20, progress=False)
    fit(model, x, config=tc, run_dir=tmp_path / "r")
    assert calls == [40]
    fit(model, x, config=tc)                                         # trained already: left alone
    fit(model, x, config=tc.replace(epochs=2), run_dir=tmp_path / "r", resume=True)
    assert calls == [40]
    with pytest.raises(ConfigError, match="one likelihood decoder"):
        registry.build("dae", {"input_shape": (12,), "hidden_dims": (8,), "tied_weights": True,
                               "output_bias": "data"}).init_from_data(x)


# -- CVAE ----------------------------------------------------------------------------------------
def test_cvae_conditions_encoder_and_decoder(tmp_path):
    torch.manual_seed(0)
    model = registry.build("cvae", {"input_shape": [16], "latent_dim": 2, "hidden_dims": [16], "num_classes": 4})
    assert isinstance(model, CVAE) and model.is_conditional
    x, y = _binary(8, 16), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    onehot = torch.nn.functional.one_hot(y, 4).float()
    torch.testing.assert_close(model.encode(x, y).mean, model.encode(x, onehot).mean)
    assert not torch.allclose(model.encode(x, y).mean, model.encode(x, (y + 1) % 4).mean)
    z = torch.zeros(8, 2)
    assert not torch.allclose(model.decode(z, y).loc, model.decode(z, (y + 1) % 4).loc)
    assert model.sample(5, 3).shape == (5, 16)
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(model.sample(5, 3, g), model.sample(5, torch.full((5,), 3), torch.Generator().manual_seed(0)))
    lo = model.loss(x, model(x, y), y)
    assert math.isfinite(float(lo.total.detach())) and model.log_importance_weights(x, 4, y).shape == (4, 8)
    with pytest.raises(DataError, match="needs labels"):
        model.encode(x)
    with pytest.raises(DataError, match="0..3"):
        model.encode(x, y + 4)
    with pytest.raises(DataError, match="columns"):
        model.encode(x, torch.zeros(8, 3))
    with pytest.raises(ConfigError, match="num_classes"):
        CVAEConfig(num_classes=0)
    model.save_pretrained(tmp_path / "c")
    torch.testing.assert_close(from_pretrained(tmp_path / "c").embed(x, y), model.embed(x, y))
    grid = figures.analogy_images(model, x[:3], y[:3])
    assert grid.shape == (3, 5, 16)
    torch.testing.assert_close(grid[:, 0], x[:3])
    torch.testing.assert_close(grid[1, 1 + 2], model.decode(model.embed(x[1:2], y[1:2]), torch.tensor([2])).mean()[0])
    rows = figures.class_rows_images(model, 6, torch.Generator().manual_seed(0))
    assert rows.shape == (4, 6, 16)
    draws = torch.randn(6, model.config.latent_dim, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rows[2, 5], model.decode(draws[5:6], torch.tensor([2])).mean()[0])  # row = class, column = draw
    figures.save_class_rows(model, tmp_path / "rows.png", 4)


# -- latent statistics, figures, diagnostics ------------------------------------------------------
def _linear_vae(dx: int, dz: int) -> VAE:
    model = VAE(VAEConfig(input_shape=(dx,), latent_dim=dz, hidden_dims=(), activation="identity",
                          likelihood="gaussian", decoder_std=0.5))
    return model.eval()


def test_active_units_and_kl_per_dimension_closed_form():
    model = _linear_vae(4, 3)
    enc = model.encoder.mlp[0]
    with torch.no_grad():
        enc.weight.zero_()
        enc.bias.zero_()
        enc.weight[0, 0] = 1.0     # z1 mean = x1: variance over data 1 -> active
        enc.weight[1, 1] = 0.05    # z2 mean = 0.05 x2: variance 0.0025 -> inactive
        enc.bias[3:] = math.log(0.25)
    x = torch.randn(4000, 4, generator=torch.Generator().manual_seed(0))
    au = active_units(model, x)
    assert au.count == 1 and au.active.tolist() == [True, False, False]
    assert float(au.variances[0]) == pytest.approx(float(x[:, 0].var()), rel=1e-5)
    kl = kl_per_dimension(model, x)
    m = torch.stack([x[:, 0], 0.05 * x[:, 1], torch.zeros(4000)], 1)
    expected = kl_divergence(Normal(m, 0.5), Normal(0.0, 1.0)).mean(0)
    torch.testing.assert_close(kl, expected)


def test_active_units_of_each_layer_of_a_two_layer_iwae_closed_form():
    """Linear q(h1|x) and q(h2|h1): E[h2|x] = W2 W1 x exactly, so the per-layer variances are known."""
    from aekit.evaluate.latent import active_units_per_layer, latent_statistics

    model = IWAE(IWAEConfig(input_shape=(3,), hidden_dims=(), activation="identity", n_stochastic_layers=2,
                            intermediate_dim=2, intermediate_hidden_dims=(), latent_dim=2, likelihood="gaussian"))
    q1, q2 = model.q1.mlp[0], model.q2[0]
    with torch.no_grad():
        for lin in (q1, q2):
            lin.weight.zero_()
            lin.bias.zero_()
        q1.weight[0, 0], q1.weight[1, 1] = 1.0, 0.05     # h1 means: x0 (active), 0.05 x1 (variance 0.0025)
        q1.bias[2:] = math.log(0.01)                      # q(h1|x) std 0.1
        q2.weight[0, 0], q2.weight[1, 0] = 0.5, 0.05      # h2 means: 0.5 h1_0 (variance 0.25), 0.05 h1_0 (0.0025)
    x = torch.randn(4000, 3, generator=torch.Generator().manual_seed(0))
    bottom, top = active_units_per_layer(model, x, samples=400)
    assert bottom.active.tolist() == [True, False] and top.active.tolist() == [True, False]
    v = float(x[:, 0].var())
    assert float(bottom.variances[0]) == pytest.approx(v, rel=1e-5)
    assert float(top.variances[0]) == pytest.approx(0.25 * v, rel=2e-3)     # + 0.25 * 0.01 / 400 of Monte Carlo
    assert float(top.variances[1]) == pytest.approx(0.0025 * v, rel=2e-3)
    stats = latent_statistics(model, x)
    assert stats["active_units_per_layer"] == [1, 1] and stats["active_units"] == 2.0
    vae, xs = _linear_vae(4, 3), torch.randn(50, 4)
    assert [a.count for a in active_units_per_layer(vae, xs)] == [active_units(vae, xs).count]   # one code: one layer


def test_manifold_grid_is_the_gaussian_inverse_cdf(tmp_path):
    model = _linear_vae(2, 2)
    with torch.no_grad():
        model.decoder.mlp[0].weight.copy_(torch.eye(2))
        model.decoder.mlp[0].bias.zero_()
    n = 5
    grid = figures.manifold_images(model, n=n)                           # (25, 2): the decoded z
    ppf = torch.tensor([-1.2815515655446004, -0.5244005127080407, 0.0, 0.5244005127080407, 1.2815515655446004])
    torch.testing.assert_close(grid[:n, 0], ppf)                         # z1 left to right
    torch.testing.assert_close(grid[::n, 1], ppf.flip(0))                # z2 top to bottom
    img = _vae()
    assert figures.save_manifold(VAE(VAEConfig(input_shape=(16,), latent_dim=2, hidden_dims=(8,))), tmp_path / "m.png", n=4).is_file()
    a, b = torch.rand(2, 12), torch.rand(2, 12)
    path = figures.interpolation_images(model, torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -2.0]]), steps=3)
    torch.testing.assert_close(path[0, 1], (model.embed(torch.tensor([[1.0, 2.0]])) + model.embed(torch.tensor([[3.0, -2.0]])))[0] / 2)
    with pytest.raises(ConfigError, match="steps"):
        figures.interpolation_images(img, a, b, steps=1)


def test_latent_diagnostics_measure_centre_areas_and_holes(tmp_path):
    g = torch.Generator().manual_seed(0)
    prior_like = torch.randn(4000, 2, generator=g)
    labels = torch.arange(4000) % 2
    d = diagnostics.latent_diagnostics(prior_like, labels)
    assert d["centre_offset"] < 0.1 and d["asymmetry"] < 0.1 and d["class_area_ratio"] < 1.2
    assert d["prior_hole_fraction"] < 0.05 and d["fitted_hole_fraction"] < 0.05
    # Class 0 with sd 0.1, class 1 with sd 0.3, both around (5, 5): off-centre, unequal, far from N(0, I).
    ae_like = torch.cat([5 + 0.1 * torch.randn(2000, 2, generator=g), 5 + 0.3 * torch.randn(2000, 2, generator=g)])
    lab = torch.cat([torch.zeros(2000), torch.ones(2000)]).long()
    d = diagnostics.latent_diagnostics(ae_like, lab)
    spread = math.sqrt((0.01 + 0.09) / 2)
    assert d["centre_offset"] == pytest.approx(math.sqrt(50) / spread, rel=0.05)
    assert d["class_area_ratio"] == pytest.approx(9.0, rel=0.15)         # (0.3 / 0.1)^2 in 2-D
    assert d["prior_hole_fraction"] > 0.99
    # Two tight clusters at x = -3 and x = +3: the Gaussian fitted to them puts most of its mass in the gap.
    two = torch.randn(4000, 2, generator=g) * 0.3 + torch.tensor([3.0, 0.0]) * (2 * (torch.arange(4000) % 2) - 1)[:, None]
    d = diagnostics.latent_diagnostics(two, torch.arange(4000) % 2)
    assert d["fitted_hole_fraction"] > 0.5 and d["class_area_ratio"] < 1.2
    path = diagnostics.save_scatter_panels({"AE": (ae_like, lab), "VAE": (prior_like, labels)}, tmp_path / "s.png")
    assert path.is_file()
    for args, kw, error, match in (((prior_like[:, 0],), {}, DataError, "tensor \\(N, D\\)"),
                                   ((prior_like.numpy(),), {}, DataError, "tensor \\(N, D\\)"),
                                   ((prior_like, labels[:10]), {}, DataError, "4000 labels"),
                                   ((prior_like.clone().fill_(float("nan")),), {}, DataError, "NaN"),
                                   ((prior_like[:20],), {"k": 100}, ConfigError, "k=100")):
        with pytest.raises(error, match=match):
            diagnostics.latent_diagnostics(*args, **kw)


def test_study_commands_run_end_to_end(tmp_path, capsys):
    from aekit.cli import main

    out = tmp_path / "dims"
    args = ["study", "latent-dim", "--data", "digits", "--dims", "2", "3", "--epochs", "1", "--k", "5", "--eval-n", "200", "--out", str(out)]
    assert main(args) == 0
    import json

    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["latent_dim"] for r in rows] == [2, 3]
    assert all(r["log_likelihood"] > r["elbo"] for r in rows)            # L_5 above L_1 on 200 test digits
    assert (out / "latent_dim.png").is_file() and (out / "nz2" / "best" / "config.json").is_file()
    assert main(args) == 2 and "already holds a study" in capsys.readouterr().err
    (out / "results.json").unlink()   # a study that stopped part-way: its runs are not overwritten
    assert main(args) == 2 and "already holds a run of an earlier study" in capsys.readouterr().err
    fresh = ["study", "latent-dim", "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "d2")]
    assert main([*fresh, "--dims", "2", "2"]) == 2 and "names a latent size twice" in capsys.readouterr().err
    np.save(tmp_path / "wide.npy", np.full((60, 4), 3.0, dtype=np.float32))
    fresh[3] = str(tmp_path / "wide.npy")
    assert main([*fresh, "--dims", "2"]) == 2 and "draws each value as a Bernoulli" in capsys.readouterr().err
    assert not (tmp_path / "d2").exists()
    space = tmp_path / "space"
    assert main(["study", "latent-space", "--data", "digits", "--epochs", "1", "--hidden-dims", "32",
                 "--eval-n", "200", "--out", str(space)]) == 0
    res = json.loads((space / "results.json").read_text())["diagnostics"]
    assert set(res) == {"ae", "vae"} and "prior_hole_fraction" in res["ae"]
    assert (space / "latent_scatter.png").is_file() and (space / "prior_decodings.png").is_file()
