"""The shared maths of losses.py against torch.distributions and closed forms."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from aekit import losses

torch.manual_seed(0)


def test_gaussian_kl_matches_torch_distributions():
    mean, logvar = torch.randn(50, 7), torch.randn(50, 7)
    q = Normal(mean, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mean), torch.ones_like(mean))
    expected = kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(losses.gaussian_kl(mean, logvar), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(losses.gaussian_kl_per_dim(mean, logvar), kl_divergence(q, p), rtol=1e-5, atol=1e-5)


def test_gaussian_kl_between_matches_torch_distributions():
    mq, lq, mp, lp = (torch.randn(30, 5) for _ in range(4))
    expected = kl_divergence(Normal(mq, torch.exp(0.5 * lq)), Normal(mp, torch.exp(0.5 * lp))).sum(-1)
    torch.testing.assert_close(losses.gaussian_kl_between(mq, lq, mp, lp), expected, rtol=1e-5, atol=1e-5)


def test_kl_is_zero_only_at_the_prior():
    assert losses.gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() < 1e-7
    assert (losses.gaussian_kl(torch.full((3, 4), 0.1), torch.zeros(3, 4)) > 0).all()


def test_bernoulli_log_likelihood_matches_torch_distributions():
    logits = torch.randn(20, 1, 4, 4) * 3
    x = torch.bernoulli(torch.full((20, 1, 4, 4), 0.4))
    expected = Bernoulli(logits=logits).log_prob(x).reshape(20, -1).sum(1)
    torch.testing.assert_close(losses.bernoulli_log_likelihood(logits, x), expected, rtol=1e-5, atol=1e-4)


def test_repeated_bernoulli_log_likelihood_matches_torch_distributions_on_every_copy():
    logits = torch.randn(3, 20, 1, 4, 4) * 3       # L = 3 decoder outputs for each of 20 inputs
    x = torch.bernoulli(torch.full((20, 1, 4, 4), 0.4))
    expected = Bernoulli(logits=logits).log_prob(x.expand(3, *x.shape)).reshape(3, 20, -1).sum(-1)
    torch.testing.assert_close(losses.bernoulli_log_likelihood_repeated(logits, x), expected, rtol=1e-5, atol=1e-4)
    grey = torch.rand(20, 1, 4, 4)                 # grey levels: the cross-entropy form, as for one copy
    torch.testing.assert_close(losses.bernoulli_log_likelihood_repeated(logits, grey),
                               torch.stack([losses.bernoulli_log_likelihood(lo, grey) for lo in logits]),
                               rtol=1e-5, atol=1e-4)


def test_bernoulli_log_likelihood_is_stable_for_large_logits():
    logits = torch.tensor([[100.0, -100.0]])
    ll = losses.bernoulli_log_likelihood(logits, torch.tensor([[1.0, 0.0]]))
    assert torch.isfinite(ll).all() and ll.abs().max() < 1e-6


@pytest.mark.parametrize("logvar", ["tensor", 0.3])
def test_gaussian_log_likelihood_matches_torch_distributions(logvar):
    x, mean = torch.randn(10, 6), torch.randn(10, 6)
    lv = torch.randn(10, 6) if logvar == "tensor" else logvar
    std = torch.exp(0.5 * torch.as_tensor(lv))
    expected = Normal(mean, std).log_prob(x).sum(1)
    torch.testing.assert_close(losses.gaussian_log_likelihood(x, mean, lv), expected, rtol=1e-5, atol=1e-4)


def test_log_normal_and_standard_normal():
    z, m, lv = torch.randn(3, 8, 4), torch.randn(8, 4), torch.randn(8, 4)
    torch.testing.assert_close(losses.log_normal(z, m, lv), Normal(m, torch.exp(0.5 * lv)).log_prob(z).sum(-1))
    torch.testing.assert_close(losses.log_standard_normal(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_squared_error():
    x, y = torch.randn(4, 2, 3), torch.randn(4, 2, 3)
    torch.testing.assert_close(losses.squared_error(x, y), ((x - y) ** 2).sum((1, 2)))


def test_reparameterize_has_the_right_moments():
    mean, logvar = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, math.log(4.0)]])
    z = losses.reparameterize(mean, logvar, n_samples=200_000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (200_000, 1, 2)
    torch.testing.assert_close(z.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([[1.0, 2.0]]), atol=0.02, rtol=0)


def test_reparameterize_passes_gradients():
    mean = torch.zeros(2, 3, requires_grad=True)
    logvar = torch.zeros(2, 3, requires_grad=True)
    losses.reparameterize(mean, logvar, 4).sum().backward()
    assert mean.grad is not None and logvar.grad is not None and mean.grad.abs().sum() > 0


def test_log_mean_exp():
    a = torch.tensor([[0.0, math.log(3.0)], [math.log(2.0), math.log(5.0)]])
    torch.testing.assert_close(losses.log_mean_exp(a, 0), torch.log(torch.tensor([1.5, 4.0])))
    big = torch.tensor([1000.0, 1000.0])
    assert torch.isfinite(losses.log_mean_exp(big))


def test_free_bits_clamps_each_dimension_of_the_batch_mean():
    kl = torch.tensor([[0.1, 2.0], [0.3, 4.0]])  # batch means 0.2 and 3.0
    assert float(losses.free_bits_kl(kl, 0.5)) == pytest.approx(0.5 + 3.0)
