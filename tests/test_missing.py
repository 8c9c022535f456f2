"""Training and evaluating on incomplete data (NaN marks a missing value; MIWAE, Mattei & Frellsen
2019): the bound counts the observed values only, and with the encoder's q from zero-filled inputs the
importance-sampled estimate is still of the observed values' marginal, log N(x_o; b_o, C_oo) for a
linear-Gaussian model."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import MultivariateNormal

from aekit import DataError
from aekit.config import TrainConfig
from aekit.evaluate.impute import impute
from aekit.evaluate.likelihood import log_likelihood
from aekit.models.iwae import IWAE, IWAEConfig
from aekit.models.vae import VAE, VAEConfig
from aekit.train import fit
from test_likelihood import SIGMA, _data, _ppca


@pytest.fixture(autouse=True)
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _missing_copy(model):
    twin = type(model)(model.config.replace(missing_values=True)).double()
    twin.load_state_dict(model.state_dict())
    return twin.eval()


def test_importance_sampled_log_likelihood_of_incomplete_rows_is_the_observed_marginal():
    # q(z | x with zeros for the missing values) sits off the posterior given the observed values alone,
    # so it is widened (std x 2) to keep the weights' tails light enough for 20000 samples
    model, W, b = _ppca(mean_shift=0.2, std_scale=2.0)
    model = _missing_copy(model)
    x = _data(40, W, b)
    observed = torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) > 0.4
    observed[:, 0] = True                                  # every row keeps a value
    holes = torch.where(observed, x, torch.nan)
    estimate = log_likelihood(model, holes, k=20000, seed=0)
    C = W @ W.T + SIGMA**2 * torch.eye(W.shape[0])
    exact = torch.stack([MultivariateNormal(b[o], covariance_matrix=C[o][:, o]).log_prob(row[o])
                         for row, o in zip(x, observed)])
    error = estimate - exact          # a row's error is mostly its importance sampling noise: it averages out
    assert error.abs().max() < 0.06 and error.mean().abs() < 0.01, error
    # counting the zeros the encoder sees as observed values would be far off
    assert (log_likelihood(_ppca(mean_shift=0.2, std_scale=2.0)[0], holes.nan_to_num(0.0), k=2000) - exact).abs().mean() > 0.5
    # complete rows: the same numbers as the model without missing values
    complete = log_likelihood(model, x[:5], k=2000, seed=0)
    assert torch.allclose(complete, log_likelihood(_ppca(mean_shift=0.2, std_scale=2.0)[0], x[:5], k=2000, seed=0))


@pytest.mark.parametrize("cls,cfg", [(VAE, VAEConfig), (IWAE, IWAEConfig)])
def test_the_loss_counts_observed_values_and_the_encoder_sees_zeros(cls, cfg):
    torch.manual_seed(0)
    model = cls(cfg(input_shape=(6,), latent_dim=2, hidden_dims=(5,), likelihood="gaussian", missing_values=True)).double()
    x = torch.randn(8, 6)
    holes = x.clone()
    holes[::2, 1:3] = torch.nan
    observed = ~torch.isnan(holes)
    out = model(holes, generator=torch.Generator().manual_seed(0))
    loss = model.loss(holes, out)
    assert torch.isfinite(loss.total)
    loss.total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # by hand: the encoder's input is x with 0 where it is missing; log p(x_o | z) sums observed values
    latent = model.encode(torch.where(observed, holes, 0.0))
    assert torch.equal(latent.mean, model.encode(holes).mean)
    z = latent.mean
    per_value = model.decode(z).log_prob_per_value(x)
    assert torch.allclose(model.log_joint(holes, z, observed=observed) - model.log_joint(x, z),
                          -(per_value * ~observed).sum(1))


def test_fit_on_incomplete_digits_then_impute():
    torch.set_default_dtype(torch.float32)
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data[:400] / 16.0, dtype=torch.float32)
    observed = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) > 0.3
    holes = torch.where(observed, x, torch.nan)
    model = IWAE(IWAEConfig(input_shape=(64,), latent_dim=4, hidden_dims=(32,), k=5, likelihood="bernoulli",
                            missing_values=True, output_bias="data"))
    with pytest.raises(DataError, match="dynamic binarization cannot draw"):
        fit(model, holes, config=TrainConfig(epochs=1, progress=False), binarize=True)
    result = fit(model, holes, config=TrainConfig(epochs=40, batch_size=50, lr=1e-2, progress=False))
    losses = [r["train_loss"] for r in result.history]
    assert all(map(lambda v: v == v, losses)) and losses[-1] < losses[0] - 1
    from aekit.evaluate.impute import choose_method

    assert choose_method(model, holes, None) == "importance"      # a model trained on incomplete data
    filled = impute(model.eval(), holes, observed, method="importance", steps=200, warm_start=0, fill=0.0,
                    generator=torch.Generator().manual_seed(0))
    hidden = ~observed
    mean_fill = torch.where(observed, x, torch.nan).nanmean(0).expand_as(x)
    assert ((filled.mean - x)[hidden] ** 2).mean() < 0.8 * ((mean_fill - x)[hidden] ** 2).mean()


def test_nan_is_refused_without_missing_values_and_inf_always():
    torch.set_default_dtype(torch.float32)
    x = torch.rand(4, 6)
    x[0, 0] = torch.nan
    plain = VAE(VAEConfig(input_shape=(6,), latent_dim=2, hidden_dims=(4,)))
    with pytest.raises(DataError, match="missing_values=True takes NaN as a missing value"):
        plain.check_inputs(x)
    incomplete = VAE(VAEConfig(input_shape=(6,), latent_dim=2, hidden_dims=(4,), missing_values=True))
    incomplete.check_inputs(x)
    x[1, 1] = torch.inf
    with pytest.raises(DataError, match="1 infinite values"):
        incomplete.check_inputs(x)
