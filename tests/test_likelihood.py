"""The importance-sampled log-likelihood against closed forms (Burda et al. 2015, eq. 8).

A linear-Gaussian VAE (probabilistic PCA: z ~ N(0, I), x = W z + b + N(0, s^2 I)) has
p(x) = N(b, W W^T + s^2 I) and, when W has orthogonal columns, a diagonal exact posterior that the
VAE's linear encoder can represent. With that q every weight p(x, z)/q(z|x) equals p(x): the
estimate is exact with zero variance. With a perturbed q it is exact in expectation (in p, not in
log p), and the bound increases with k towards log p(x). The same holds for the two-stochastic-layer
IWAE on a linear-Gaussian chain h2 -> h1 -> x.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from aekit.errors import ConfigError
from aekit.evaluate.likelihood import bits_per_dim, density_report, elbo_terms, log_likelihood
from aekit.models.iwae import IWAE, IWAEConfig
from aekit.models.vae import VAE, VAEConfig

DX, DZ, SIGMA = 6, 3, 0.5


@pytest.fixture(autouse=True)
def _float64():
    # Closed forms are compared to ~1e-10, so every test here runs in float64.
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _orthogonal(rows: int, cols: int, gen: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(rows, cols, generator=gen))
    return q


def _ppca(seed: int = 0, mean_shift: float = 0.0, std_scale: float = 1.0) -> tuple[VAE, torch.Tensor, torch.Tensor]:
    """A linear-Gaussian VAE with its exact posterior as q (optionally perturbed); returns (model, W, b)."""
    gen = torch.Generator().manual_seed(seed)
    model = VAE(VAEConfig(input_shape=(DX,), latent_dim=DZ, hidden_dims=(), activation="identity",
                          likelihood="gaussian", decoder_variance="fixed", decoder_std=SIGMA)).double()
    s = torch.tensor([2.0, 1.2, 0.7])
    W = _orthogonal(DX, DZ, gen) * s                      # orthogonal columns: W^T W = diag(s^2)
    b = torch.randn(DX, generator=gen) * 0.3
    m_inv = 1.0 / (s**2 + SIGMA**2)                       # M = W^T W + s^2 I is diagonal
    enc, dec = model.encoder.mlp[0], model.decoder.mlp[0]
    with torch.no_grad():
        dec.weight.copy_(W)
        dec.bias.copy_(b)
        mean_w = m_inv[:, None] * W.T                     # posterior mean M^-1 W^T (x - b)
        enc.weight.zero_()
        enc.weight[:DZ] = mean_w
        enc.bias[:DZ] = -mean_w @ b + mean_shift
        enc.bias[DZ:] = torch.log(SIGMA**2 * m_inv) + 2 * math.log(std_scale)
    return model.eval(), W, b


def _closed_form(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    cov = W @ W.T + SIGMA**2 * torch.eye(W.shape[0])
    return MultivariateNormal(b, covariance_matrix=cov).log_prob(x)


def _data(n: int, W: torch.Tensor, b: torch.Tensor, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, W.shape[1], generator=gen) @ W.T + b + SIGMA * torch.randn(n, W.shape[0], generator=gen)


def test_exact_posterior_gives_exact_zero_variance_estimate():
    model, W, b = _ppca()
    x = _data(40, W, b)
    lw = model.log_importance_weights(x, 64, generator=torch.Generator().manual_seed(0))  # (64, 40)
    exact = _closed_form(W, b, x)
    assert lw.std(dim=0).max() < 1e-10                    # every weight equals p(x)
    torch.testing.assert_close(lw[0], exact, atol=1e-10, rtol=0)
    torch.testing.assert_close(log_likelihood(model, x, k=10), exact, atol=1e-10, rtol=0)


def _relative_variance(shift: float, scale: float, post_std: torch.Tensor) -> float:
    """Var_q(w) / p(x)^2 for w = p(x) p(z|x) / q(z|x), p(z|x) = N(m, s^2), q = N(m + shift, (scale s)^2) per
    dimension: E_q[(p/q)^2] = prod_j r^2 / sqrt(2 r^2 - 1) exp(d_j^2 / (2 r^2 - 1)), d_j = shift / s_j."""
    r2 = scale**2
    f = r2 / math.sqrt(2 * r2 - 1) * torch.exp((shift / post_std) ** 2 / (2 * r2 - 1))
    return float(f.prod()) - 1.0


def _ppca_post_std() -> torch.Tensor:
    s = torch.tensor([2.0, 1.2, 0.7])
    return torch.sqrt(SIGMA**2 / (s**2 + SIGMA**2))


def test_importance_sampled_estimate_matches_closed_form_with_approximate_posterior():
    shift, scale, k = 0.1, 1.2, 2000
    model, W, b = _ppca(mean_shift=shift, std_scale=scale)   # q wider than and off the posterior
    x = _data(100, W, b)
    exact = _closed_form(W, b, x)
    est = log_likelihood(model, x, k=k, chunk_size=1 << 16)
    # Delta method: sd(log p_hat) = sqrt(Var(w) / k) / p(x); the tolerance is 5 of those (about 0.07).
    sd = math.sqrt(_relative_variance(shift, scale, _ppca_post_std()) / k)
    assert (est - exact).abs().max() < 5 * sd
    assert abs(float((est - exact).mean())) < 5 * sd / math.sqrt(x.shape[0])
    # Every weight is an unbiased estimate of p(x) (not of log p(x)): E_q[w / p(x)] = 1 for each x.
    ratios = torch.exp(model.log_importance_weights(x[:20], 4000, generator=torch.Generator().manual_seed(3)) - exact[:20])
    se = ratios.std(0) / math.sqrt(ratios.shape[0])
    assert ((ratios.mean(0) - 1.0).abs() < 5 * se).all()


@torch.no_grad()
def test_bound_increases_with_k_towards_log_px_and_elbo_is_its_k1_expectation():
    model, W, b = _ppca(mean_shift=0.3, std_scale=1.5)
    x = _data(200, W, b)
    exact = float(_closed_form(W, b, x).mean())
    bounds = [float(log_likelihood(model, x, k=k, seed=k).mean()) for k in (1, 10, 1000)]
    rho = _relative_variance(0.3, 1.5, _ppca_post_std())
    sd = math.sqrt(rho / 1000 / x.shape[0])        # sd of the mean k = 1000 estimate
    bias = rho / (2 * 1000)                          # E log p_hat - log p ~ -Var(w) / (2 k p^2)
    assert bounds[0] < bounds[1] < bounds[2] < exact + 5 * sd
    assert exact - bounds[2] < bias + 5 * sd
    assert exact - bounds[0] > 10 * (exact - bounds[2])
    # Closed-form ELBO: E_q log N(x; W z + b, s^2) - KL(q || N(0, I)).
    lat = model.encode(x)
    var = lat.logvar.exp()
    resid = x - lat.mean @ W.T - b
    rec = -0.5 * (DX * math.log(2 * math.pi * SIGMA**2) + (resid.pow(2).sum(1) + (var * (W**2).sum(0)).sum(1)) / SIGMA**2)
    kl = 0.5 * (lat.mean.pow(2) + var - 1 - lat.logvar).sum(1)
    elbo = rec - kl
    # k = 1 importance weights average to the ELBO; so does the model's own ELBO estimate.
    lw = model.log_importance_weights(x, 2000, generator=torch.Generator().manual_seed(5))   # (2000, N)
    se = lw.std(0) / math.sqrt(lw.shape[0])
    assert ((lw.mean(0) - elbo).abs() < 5 * se).all()
    terms = elbo_terms(model, x, seed=0)
    torch.testing.assert_close(terms["kl"], kl)
    assert abs(float(terms["elbo"].mean() - elbo.mean())) < 5 * float(lw.std(0).mean()) / math.sqrt(x.shape[0])
    assert float(elbo.mean()) < bounds[1]


def test_chunks_bound_memory_and_do_not_change_the_result():
    model, W, b = _ppca()
    x = _data(37, W, b)
    shapes = []
    inner = model.log_importance_weights

    def spy(xb, k, y=None, generator=None):
        shapes.append((k, xb.shape[0]))
        return inner(xb, k, y, generator)

    model.log_importance_weights = spy
    est = log_likelihood(model, x, k=50, chunk_size=120)   # 50 samples x 2 points per pass
    assert max(k * n for k, n in shapes) <= 120 and max(n for _, n in shapes) == 2
    shapes.clear()
    est2 = log_likelihood(model, x, k=50, chunk_size=16)   # chunks over k: 16 + 16 + 16 + 2
    assert sorted({k for k, _ in shapes}) == [2, 16]
    torch.testing.assert_close(est, _closed_form(W, b, x), atol=1e-10, rtol=0)
    torch.testing.assert_close(est2, est, atol=1e-10, rtol=0)


def _two_layer_chain(seed: int = 0, perturb: float = 0.0):
    """IWAE with h2 ~ N(0, I), h1 = A h2 + c + N(0, t^2), x = W h1 + b + N(0, s^2) and exact q."""
    d1, d2, t = 4, 2, 0.6
    gen = torch.Generator().manual_seed(seed)
    model = IWAE(IWAEConfig(input_shape=(DX,), latent_dim=d2, hidden_dims=(), activation="identity",
                            likelihood="gaussian", decoder_std=SIGMA, n_stochastic_layers=2, intermediate_dim=d1,
                            intermediate_hidden_dims=(), init="default")).double()
    A = torch.zeros(d1, d2)
    A[0, 0], A[1, 1] = 1.5, 0.8                          # A^T A and A A^T diagonal
    c = torch.randn(d1, generator=gen) * 0.2
    W = _orthogonal(DX, d1, gen) * torch.tensor([1.8, 1.1, 0.9, 0.5])
    b = torch.randn(DX, generator=gen) * 0.3
    sigma1 = A @ A.T + t**2 * torch.eye(d1)              # prior covariance of h1 (diagonal)
    prec = torch.linalg.inv(sigma1) + W.T @ W / SIGMA**2  # posterior precision of h1 given x (diagonal)
    post = torch.linalg.inv(prec)
    prec2 = torch.eye(d2) + A.T @ A / t**2               # p(h2 | h1) precision (diagonal)
    post2 = torch.linalg.inv(prec2)
    with torch.no_grad():
        q1, q2, p1, px = model.q1.mlp[0], model.q2[0], model.p1[0], model.px.mlp[0]
        q1.weight.zero_(); q1.weight[:d1] = post @ W.T / SIGMA**2
        q1.bias[:d1] = post @ (torch.linalg.inv(sigma1) @ c - W.T @ b / SIGMA**2) + perturb
        q1.bias[d1:] = torch.log(torch.diagonal(post)) + 2 * perturb
        q2.weight.zero_(); q2.weight[:d2] = post2 @ A.T / t**2
        q2.bias[:d2] = -post2 @ A.T @ c / t**2
        q2.bias[d2:] = torch.log(torch.diagonal(post2))
        p1.weight.zero_(); p1.weight[:d1] = A
        p1.bias[:d1] = c
        p1.bias[d1:] = math.log(t**2)
        px.weight.copy_(W); px.bias.copy_(b)
    cov = W @ sigma1 @ W.T + SIGMA**2 * torch.eye(DX)
    return model.eval(), MultivariateNormal(W @ c + b, covariance_matrix=cov), torch.sqrt(torch.diagonal(post))


def test_two_stochastic_layers_match_the_linear_gaussian_chain():
    model, px, _ = _two_layer_chain()
    x = px.sample((30,))
    lw = model.log_importance_weights(x, 32, generator=torch.Generator().manual_seed(0))
    assert lw.std(dim=0).max() < 1e-10
    torch.testing.assert_close(lw[0], px.log_prob(x), atol=1e-10, rtol=0)
    perturb, k = 0.1, 2000
    model, px, post_std = _two_layer_chain(perturb=perturb)
    est = log_likelihood(model, x, k=k, chunk_size=1 << 16)
    # q(h2|h1) is exact, so the weights vary only through q(h1|x) (shift 0.1, std scaled by e^0.1).
    sd = math.sqrt(_relative_variance(perturb, math.exp(perturb), post_std) / k)
    assert (est - px.log_prob(x)).abs().max() < 5 * sd
    assert float(log_likelihood(model, x, k=1).mean()) < float(est.mean())


def test_bits_per_dim_and_report():
    assert bits_per_dim(-784 * math.log(2.0), 784) == pytest.approx(1.0)
    # A uniform density on [0, 1] read as 256 levels: 8 bits per dimension.
    assert bits_per_dim(0.0, 10, levels=256) == pytest.approx(8.0)
    model, W, b = _ppca()
    x = _data(20, W, b)
    rep = density_report(model, x, k=20)
    assert rep["nll"] == pytest.approx(-float(_closed_form(W, b, x).mean()), abs=1e-8)
    assert rep["log_likelihood"] >= rep["elbo"]
    assert "log_likelihood_bits_per_dim_8bit" in rep           # a Gaussian decoder is a density


def test_rejects_bad_arguments():
    model, W, b = _ppca()
    x = _data(3, W, b)
    with pytest.raises(ConfigError, match="k=0"):
        log_likelihood(model, x, k=0)
    with pytest.raises(ConfigError, match="chunk_size"):
        log_likelihood(model, x, k=5, chunk_size=0)
