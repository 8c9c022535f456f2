"""Imputation against closed forms: the exact conditional of a linear-Gaussian model (probabilistic
PCA, p(x) = N(b, W W^T + s^2 I)) for the Markov chains, the least-squares completion within the
subspace for a linear autoencoder's iteration."""

from __future__ import annotations

import pytest
import torch

from aekit import ConfigError, DataError
from aekit.evaluate.impute import impute, missing_mask
from aekit.models.ae import AE, AEConfig
from aekit.models.iwae import IWAE, IWAEConfig
from test_likelihood import SIGMA, _orthogonal, _ppca


@pytest.fixture(autouse=True)
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _conditional(W, b, x, observed):
    """Mean and covariance of p(x_m | x_o) under N(b, W W^T + s^2 I), for one row x."""
    C = W @ W.T + SIGMA**2 * torch.eye(W.shape[0])
    o, m = observed, ~observed
    gain = C[m][:, o] @ torch.linalg.inv(C[o][:, o])
    return b[m] + gain @ (x[o] - b[o]), C[m][:, m] - gain @ C[o][:, m]


def _chains(method, n=4000, steps=400, shift=0.6, scale=1.6):
    # burn-in 200 (the first 100 of them pseudo-Gibbs): with this q about 8% of proposals are accepted
    model, W, b = _ppca(mean_shift=shift, std_scale=scale)     # q off the posterior and too wide
    x = torch.tensor([1.5, -0.8, 0.4, 0.9, -1.2, 0.3])
    observed = torch.tensor([True, False, True, True, False, False])
    rows, mask = x.expand(n, -1).clone(), observed.expand(n, -1).clone()
    result = impute(model, rows, mask, method=method, steps=steps, burn_in=200, generator=torch.Generator().manual_seed(0))
    mean, cov = _conditional(W, b, x, observed)
    return result, mean, cov, observed, rows


def test_metropolis_within_gibbs_samples_the_exact_conditional_with_a_rough_posterior():
    result, mean, cov, observed, rows = _chains("metropolis")
    assert torch.equal(result.mean[:, observed], rows[:, observed]) and torch.equal(result.sample[:, observed], rows[:, observed])
    assert 0.05 < result.acceptance < 0.95
    draws = result.sample[:, ~observed]                       # the chains' last states: 4000 independent draws
    se = (cov.diagonal() / draws.shape[0]).sqrt()
    assert torch.all((draws.mean(0) - mean).abs() < 4 * se + 0.01), (draws.mean(0), mean)
    assert torch.allclose(torch.cov(draws.T), cov, atol=0.06 * float(cov.diagonal().max()))
    assert torch.allclose(result.mean[:, ~observed].mean(0), mean, atol=0.02)   # Rao-Blackwellized means


def test_pseudo_gibbs_is_biased_with_that_posterior_and_exact_with_the_true_one():
    """The reason to prefer Metropolis: with the same rough q the simpler chain settles elsewhere."""
    result, mean, cov, observed, _ = _chains("pseudo_gibbs")
    assert result.acceptance == 1.0
    assert (result.mean[:, ~observed].mean(0) - mean).abs().max() > 0.1
    exact, mean, cov, observed, _ = _chains("pseudo_gibbs", shift=0.0, scale=1.0)
    assert torch.allclose(exact.mean[:, ~observed].mean(0), mean, atol=0.02)
    assert torch.allclose(torch.cov(exact.sample[:, ~observed].T), cov, atol=0.06 * float(cov.diagonal().max()))


def test_iterating_a_linear_autoencoder_reaches_the_least_squares_completion_in_its_subspace():
    gen = torch.Generator().manual_seed(3)
    d, k = 8, 3
    U, b = _orthogonal(d, k, gen), torch.randn(d, generator=gen)
    model = AE(AEConfig(input_shape=(d,), latent_dim=k, hidden_dims=(), activation="identity")).double().eval()
    with torch.no_grad():                     # reconstruct(x) = b + U U^T (x - b): the projection onto the subspace
        model.encoder.mlp[0].weight.copy_(U.T)
        model.encoder.mlp[0].bias.copy_(-U.T @ b)
        model.decoder.mlp[0].weight.copy_(U)
        model.decoder.mlp[0].bias.copy_(b)
    x = torch.randn(5, d, generator=gen)
    observed = missing_mask(x.shape, "right", 0.25)
    result = impute(model, x, observed, method="iterate", steps=3000)
    # min over x_m of |(I - P)(x - b)|^2: (I - P)_mm x_m = -(I - P)_mo x_o with x centred at b
    R = torch.eye(d) - U @ U.T
    m, o = ~observed[0], observed[0]
    xc = x - b
    expected = b[m] + torch.linalg.solve(R[m][:, m], -(R[m][:, o] @ xc[:, o].T)).T
    assert torch.allclose(result.mean[:, m], expected, atol=1e-6)
    assert torch.equal(result.mean[:, o], x[:, o]) and result.acceptance is None


def test_masks():
    g = torch.Generator().manual_seed(0)
    random = missing_mask((200, 1, 28, 28), "random", 0.3, generator=g)
    assert random.dtype == torch.bool and abs(1 - random.double().mean().item() - 0.3) < 0.01
    bottom = missing_mask((2, 1, 28, 28), "bottom", 0.5)
    assert bottom[:, :, :14].all() and not bottom[:, :, 14:].any()
    square = missing_mask((2, 1, 28, 28), "square", 0.25)
    assert (~square[0]).sum() == 14 * 14 and not square[0, 0, 7:21, 7:21].any()
    flat = missing_mask((3, 10), "right", 0.3)
    assert flat[:, :7].all() and not flat[:, 7:].any()
    with pytest.raises(ConfigError, match="needs images"):
        missing_mask((3, 10), "square", 0.3)
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        missing_mask((3, 10), "random", 1.0)
    with pytest.raises(ConfigError, match="is not one of"):
        missing_mask((3, 10), "diagonal", 0.3)


def test_refusals():
    ae = AE(AEConfig(input_shape=(6,), latent_dim=2, hidden_dims=(4,)))
    two = IWAE(IWAEConfig(input_shape=(6,), latent_dim=2, hidden_dims=(4,), n_stochastic_layers=2,
                          intermediate_dim=3, intermediate_hidden_dims=(4,), likelihood="gaussian"))
    x, mask = torch.rand(4, 6), torch.rand(4, 6) > 0.5
    with pytest.raises(ConfigError, match="is deterministic: use method='iterate'"):
        impute(ae, x, mask, method="metropolis")
    with pytest.raises(ConfigError, match="two stochastic layers"):
        impute(two, x, mask, method="metropolis", steps=2)
    assert impute(two, x, mask, method="pseudo_gibbs", steps=2).mean.shape == x.shape
    with pytest.raises(DataError, match="boolean tensor of the data's shape"):
        impute(ae, x, mask[:, :3], method="iterate")
    with pytest.raises(ConfigError, match="burn_in"):
        impute(ae, x, mask, method="iterate", steps=5, burn_in=5)
    with pytest.raises(ConfigError, match="warm_start=4 must lie in 0..burn_in"):
        impute(two, x, mask, method="pseudo_gibbs", steps=6, burn_in=3, warm_start=4)


def test_cli_impute_reports_the_error_on_hidden_values_and_a_picture(tmp_path, capsys):
    import json

    from aekit.cli import main

    torch.set_default_dtype(torch.float32)
    run = tmp_path / "vae"
    assert main(["train", "--data", "digits", "--scale", "minmax", "--likelihood", "bernoulli", "--hidden-dims", "16",
                 "--epochs", "2", "--out", str(run), "--no-progress"]) == 0
    out = tmp_path / "imp.png"
    assert main(["impute", str(run), "--pattern", "bottom", "--fraction", "0.5", "--steps", "6", "--limit", "50",
                 "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["method"] == "pseudo_gibbs" and report["n"] == 50 and report["hidden_share"] == 0.5
    assert set(report["metrics"]) == {"mse_hidden_imputed", "mse_hidden_one_draw", "mse_hidden_training_mean"}
    assert out.is_file() and report["acceptance"] == 1.0 and report["effective_samples"] is None
    assert main(["impute", str(run), "--method", "importance", "--steps", "6", "--limit", "5", "--out",
                 str(tmp_path / "i.png")]) == 0
    assert 1 <= json.loads((tmp_path / "i.json").read_text())["effective_samples"] <= 6
    assert main(["impute", str(run), "--method", "metropolis", "--steps", "4", "--limit", "5", "--out",
                 str(tmp_path / "m.png")]) == 0
    assert 0 <= json.loads((tmp_path / "m.json").read_text())["acceptance"] <= 1
    capsys.readouterr()
    assert main(["impute", str(run), "--out", str(out)]) == 2                       # never overwritten
    assert "already exists" in capsys.readouterr().err
    assert main(["impute", str(run), "--fraction", "0", "--out", str(tmp_path / "b.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "strictly between 0 and 1" in err and "\n" not in err and not (tmp_path / "b.png").exists()


def test_importance_sampling_gives_the_exact_conditional_mean_and_resampled_draws():
    """Self-normalized importance sampling with the same rough q: consistent in K, no chain."""
    model, W, b = _ppca(mean_shift=0.6, std_scale=1.6)
    x = torch.tensor([1.5, -0.8, 0.4, 0.9, -1.2, 0.3])
    observed = torch.tensor([True, False, True, True, False, False])
    n = 1000
    rows, mask = x.expand(n, -1).clone(), observed.expand(n, -1).clone()
    mean, cov = _conditional(W, b, x, observed)
    # the self-normalized estimate's bias falls as 1/K (here about 50 effective samples per 2000 draws)
    few = impute(model, rows, mask, method="importance", steps=500, warm_start=0, generator=torch.Generator().manual_seed(0))
    result = impute(model, rows, mask, method="importance", steps=16000, warm_start=0,
                    generator=torch.Generator().manual_seed(0))
    assert torch.equal(result.mean[:, observed], rows[:, observed]) and result.acceptance is None
    assert 1 < few.effective_samples < result.effective_samples < 16000
    assert torch.allclose(result.mean[:, ~observed].mean(0), mean, atol=0.006)
    assert (few.mean[:, ~observed].mean(0) - mean).abs().max() > 0.03
    draws = result.sample[:, ~observed]           # one resampled draw per row: the conditional, approximately
    assert torch.all((draws.mean(0) - mean).abs() < 4 * (cov.diagonal() / n).sqrt() + 0.01)
    assert torch.allclose(torch.cov(draws.T), cov, atol=0.06 * float(cov.diagonal().max()))
    # proposing from q(z | a pseudo-Gibbs mean) instead (the default) keeps it consistent: the bias still falls
    errors = [(impute(model, rows[:200], mask[:200], method="importance", steps=k, warm_start=20,
                      generator=torch.Generator().manual_seed(0)).mean[:, ~observed].mean(0) - mean).abs().max()
              for k in (1000, 32000)]
    assert errors[1] < 0.3 * errors[0] and errors[1] < 0.03, errors
    # the masked likelihood ignores whatever the hidden values hold
    holes = torch.where(mask, rows, torch.nan)
    again = impute(model, holes[:50], mask[:50], method="importance", steps=64, generator=torch.Generator().manual_seed(1))
    same = impute(model, rows[:50], mask[:50], method="importance", steps=64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.mean, same.mean)


def test_masked_log_prob_is_the_sum_over_observed_values():
    from aekit.nn import DecoderOutput

    g = torch.Generator().manual_seed(0)
    x, loc = torch.rand(4, 1, 3, 3, generator=g), torch.randn(4, 1, 3, 3, generator=g)
    observed = torch.rand(4, 1, 3, 3, generator=g) > 0.4
    for out in (DecoderOutput(loc, "bernoulli"), DecoderOutput(loc, "gaussian", torch.randn(4, 1, 3, 3, generator=g)),
                DecoderOutput(loc, "continuous_bernoulli"), DecoderOutput(loc.sigmoid(), "discretized_logistic", -3.0)):
        per_value = out.log_prob_per_value(x)
        assert torch.allclose(per_value.reshape(4, -1).sum(1), out.log_prob(x))
        assert torch.allclose(out.masked_log_prob(x, observed), (per_value * observed).reshape(4, -1).sum(1))
        assert torch.allclose(out.masked_log_prob(x, torch.ones_like(observed)), out.log_prob(x))


def test_rows_of_any_layout_nan_in_observed_values_and_flat_data_in_the_cli(tmp_path, capsys):
    import json

    from aekit.cli import main
    from aekit.models.vae import VAE, VAEConfig

    torch.set_default_dtype(torch.float32)
    model = VAE(VAEConfig(input_shape=(1, 4, 4), latent_dim=2, hidden_dims=(8,))).eval()
    x = torch.rand(5, 16)                                      # flat rows for an image-shaped model
    observed = missing_mask(tuple(x.shape), "random", 0.4, generator=torch.Generator().manual_seed(0))
    for method in ("importance", "metropolis", "pseudo_gibbs", "iterate"):
        result = impute(model, x, observed, method=method, steps=4)
        assert result.mean.shape == x.shape and torch.equal(result.mean[observed], x[observed])
    assert impute(model, x, observed, steps=2, fill=torch.full((16,), 0.5)).mean.shape == x.shape
    with pytest.raises(DataError, match="fill has 3 values"):
        impute(model, x, observed, steps=2, fill=torch.ones(3))
    bad = x.clone()
    bad[observed] = torch.nan
    with pytest.raises(DataError, match="NaN where the mask says a value is observed"):
        impute(model, bad, observed, steps=2)
    np_rows = torch.rand(60, 10).numpy()
    import numpy as np

    np.save(tmp_path / "t.npy", np_rows)
    run = tmp_path / "flat"
    assert main(["train", "--data", str(tmp_path / "t.npy"), "--likelihood", "gaussian", "--hidden-dims", "8",
                 "--epochs", "1", "--out", str(run), "--no-progress"]) == 0
    out = tmp_path / "flat.png"
    assert main(["impute", str(run), "--pattern", "random", "--steps", "4", "--out", str(out)]) == 0
    assert not out.exists() and json.loads(out.with_suffix(".json").read_text())["method"] == "pseudo_gibbs"
    assert "no picture" in capsys.readouterr().out
