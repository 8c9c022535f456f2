"""Regularized autoencoders: corruption processes, sparsity and contractive maths, the linear AE's
PCA subspace (Baldi & Hornik 1989), and the models' losses against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from aekit import corruption, losses, registry
from aekit.config import TrainConfig
from aekit.errors import ConfigError
from aekit.io import from_pretrained
from aekit.models.regularized import RegularizedAE
from aekit.train import fit

NAMES = ["linear_ae", "dae", "sparse_ae", "cae", "scae"]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- corruption ---------------------------------------------------------------------------------


def test_masking_hits_exactly_the_fraction_and_only_zeroes():
    x = torch.rand(50, 200, generator=gen()) + 0.5            # no zeros to start with
    noisy = corruption.masking_noise(x, 0.25, gen(1))
    zeroed = noisy == 0
    assert (zeroed.sum(1) == 50).all()                      # round(0.25 * 200) per example
    assert torch.equal(noisy[~zeroed], x[~zeroed])
    assert torch.equal(noisy, corruption.masking_noise(x, 0.25, gen(1)))  # reproducible
    assert not torch.equal(zeroed[0], zeroed[1])            # a different subset per example


def test_masking_subsets_are_uniform():
    # Each element is hit with probability nu; over many draws the per-position rate is nu.
    x = torch.ones(4000, 10)
    rate = (corruption.masking_noise(x, 0.3, gen(2)) == 0).float().mean(0)
    assert torch.allclose(rate, torch.full((10,), 0.3), atol=0.03)


def test_gaussian_noise_has_the_requested_sigma():
    x = torch.full((2000, 100), 0.5)
    noise = corruption.gaussian_noise(x, 0.3, gen(3)) - x
    assert abs(float(noise.mean())) < 0.005
    assert abs(float(noise.std()) - 0.3) < 0.005
    clipped = corruption.gaussian_noise(x, 2.0, gen(3), clip=True)
    assert clipped.min() >= 0 and clipped.max() <= 1


def test_salt_and_pepper_sets_min_or_max_with_a_fair_coin():
    x = torch.full((1000, 100), 0.5)
    noisy = corruption.salt_and_pepper_noise(x, 0.2, gen(4))
    changed = noisy != 0.5
    assert (changed.sum(1) == 20).all()
    vals = noisy[changed]
    assert set(vals.unique().tolist()) == {0.0, 1.0}
    assert abs(float(vals.mean()) - 0.5) < 0.02


def test_corrupt_rejects_bad_kinds_and_levels():
    x = torch.rand(3, 4)
    with pytest.raises(ConfigError, match="blur"):
        corruption.corrupt(x, "blur", 0.1)
    with pytest.raises(ConfigError, match="fraction"):
        corruption.corrupt(x, "masking", 1.5)
    with pytest.raises(ConfigError, match="finite"):
        corruption.corrupt(x, "gaussian", float("nan"))
    assert corruption.corrupt(x, "none", 0.0) is x


# -- loss maths ---------------------------------------------------------------------------------


def test_bernoulli_kl_matches_torch_distributions():
    rho_hat = torch.tensor([0.01, 0.05, 0.3, 0.9, 0.999], dtype=torch.float64)
    ours = losses.bernoulli_kl(0.05, rho_hat)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Bernoulli(probs=torch.full_like(rho_hat, 0.05)), torch.distributions.Bernoulli(probs=rho_hat)
    )
    assert torch.allclose(ours, ref, rtol=1e-6)
    assert float(losses.bernoulli_kl(0.05, torch.tensor([0.05]))) == pytest.approx(0.0, abs=1e-7)


def test_sparsity_kl_uses_the_batch_mean_activation():
    h = torch.tensor([[0.1, 0.9], [0.3, 0.5]])
    rho_hat = torch.tensor([0.2, 0.7])
    expected = sum(0.05 * math.log(0.05 / r) + 0.95 * math.log(0.95 / (1 - r)) for r in rho_hat.tolist())
    assert float(losses.sparsity_kl(h, 0.05)) == pytest.approx(expected, rel=1e-5)
    assert torch.allclose(losses.l1_activation(torch.tensor([[-1.0, 2.0], [0.5, 0.0]])), torch.tensor([3.0, 0.5]))


def _autograd_jacobian_sq(fn, x):
    # Per-example Jacobian by torch.autograd.functional.jacobian, one example at a time.
    return torch.stack([
        torch.autograd.functional.jacobian(lambda v: fn(v.unsqueeze(0))[0], xi).pow(2).sum() for xi in x
    ])


def test_contractive_sigmoid_closed_form_matches_autograd():
    lin = nn.Linear(7, 5).double()
    x = torch.randn(6, 7, generator=gen(5), dtype=torch.float64)
    h = torch.sigmoid(lin(x))
    ours = losses.contractive_sigmoid(h, lin.weight)
    ref = _autograd_jacobian_sq(lambda v: torch.sigmoid(lin(v)), x)
    assert torch.allclose(ours, ref, rtol=1e-10)


@pytest.mark.parametrize("conv", [False, True])
def test_exact_jacobian_norm_matches_autograd_for_deep_encoders(conv):
    torch.manual_seed(0)
    if conv:
        net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 25, 4), nn.Sigmoid())
        x = torch.randn(5, 1, 5, 5, dtype=torch.float64)
    else:
        net = nn.Sequential(nn.Linear(9, 8), nn.Softplus(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 4))
        x = torch.randn(5, 9, dtype=torch.float64)
    net = net.double()
    ours = losses.jacobian_frobenius_sq(net, x, 4)
    ref = _autograd_jacobian_sq(net, x)
    assert torch.allclose(ours, ref, rtol=1e-10)
    # Differentiable in the parameters: the gradient equals the one through the autograd Jacobian.
    g_ours = torch.autograd.grad(ours.sum(), net[0].weight)[0]
    ref_graph = torch.stack([
        torch.autograd.functional.jacobian(lambda v: net(v.unsqueeze(0))[0], xi, create_graph=True).pow(2).sum() for xi in x
    ])
    g_ref = torch.autograd.grad(ref_graph.sum(), net[0].weight)[0]
    assert torch.allclose(g_ours, g_ref, rtol=1e-8, atol=1e-12)
    with torch.no_grad():
        assert not losses.jacobian_frobenius_sq(net, x, 4).requires_grad


# -- models -------------------------------------------------------------------------------------


def build(name: str, **options) -> RegularizedAE:
    torch.manual_seed(0)
    return registry.build(name, {"input_shape": [12], "latent_dim": 5, **options})


def test_cae_closed_form_equals_exact_and_gives_the_same_gradient():
    x = torch.rand(8, 12, generator=gen(6))
    closed = build("cae")
    exact = build("cae", jacobian="exact")
    exact.load_state_dict(closed.state_dict())
    lc, le = closed.loss(x, closed(x)), exact.loss(x, exact(x))
    assert float(lc.terms["contractive"]) == pytest.approx(float(le.terms["contractive"]), rel=1e-5)
    gc = torch.autograd.grad(lc.total, closed.encoder.mlp[0].weight)[0]
    ge = torch.autograd.grad(le.total, exact.encoder.mlp[0].weight)[0]
    assert torch.allclose(gc, ge, rtol=1e-4, atol=1e-7)
    # The term is the Jacobian of the model's own code, as autograd computes it.
    ref = _autograd_jacobian_sq(lambda v: closed.encode(v).z, x).mean()
    assert float(lc.terms["contractive"]) == pytest.approx(float(ref), rel=1e-5)
    assert float(lc.total.detach()) == pytest.approx(float(lc.terms["reconstruction"] + 0.1 * lc.terms["contractive"]), rel=1e-6)


def test_deep_cae_uses_the_exact_jacobian():
    model = build("cae", hidden_dims=[7], activation="tanh", tied_weights=False)
    x = torch.rand(4, 12, generator=gen(7))
    ref = _autograd_jacobian_sq(lambda v: model.encode(v).z, x)
    assert torch.allclose(model.jacobian_frobenius_sq(x), ref, rtol=1e-5)


def test_tied_decoder_uses_the_transposed_encoder_weight():
    model = build("dae")
    W = model.encoder.mlp[0].weight                      # (5, 12)
    z = torch.rand(3, 5, generator=gen(8))
    assert torch.allclose(model.decode(z).loc, z @ W + model.decoder.bias[0], atol=1e-6)
    names = [k for k in model.state_dict() if "weight" in k]
    assert names == ["encoder.mlp.0.weight"]             # the tied weight is stored once


def test_dae_loss_compares_the_reconstruction_of_corrupted_copies_with_the_clean_input():
    model = build("dae", n_copies=3, corruption_level=0.5)
    x = torch.rand(4, 12, generator=gen(9)) + 0.1
    torch.manual_seed(123)
    out = model(x)
    assert out.latent.z.shape == (12, 5) and out.recon.loc.shape == (12, 12)
    lo = model.loss(x, out)
    # Redo it by hand with the same random stream: copy l of example n is row l*N + n.
    torch.manual_seed(123)
    noisy = corruption.masking_noise(x.repeat(3, 1), 0.5)
    assert ((noisy == 0).sum(1) == 6).all()
    logits = model.decode(torch.sigmoid(model.encoder(noisy))).loc
    expected = nn.functional.binary_cross_entropy_with_logits(logits, x.repeat(3, 1), reduction="sum") / 12
    assert float(lo.total.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_sparse_ae_penalty_and_reported_mean_activation():
    model = build("sparse_ae", sparsity_weight=2.0)
    x = torch.rand(10, 12, generator=gen(10))
    lo = model.loss(x, model(x))
    h = model.encode(x).z.detach()
    assert float(lo.terms["mean_activation"]) == pytest.approx(float(h.mean()), rel=1e-6)
    kl = losses.sparsity_kl(h, 0.05)
    assert float(lo.total.detach()) == pytest.approx(float(lo.terms["reconstruction"] + 2.0 * kl), rel=1e-6)
    l1 = build("sparse_ae", sparsity="l1", sparsity_weight=0.5)
    lo1 = l1.loss(x, l1(x))
    assert float(lo1.terms["sparsity"]) == pytest.approx(float(l1.encode(x).z.detach().sum(1).mean()), rel=1e-6)


def test_stochastic_contraction_tends_to_sigma_squared_jacobian_norm():
    # E ||h(x) - h(x + sigma eps)||^2 = sigma^2 ||J||_F^2 + O(sigma^4) (Rifai et al. 2011, CAE+H).
    sigma = 1e-3
    model = build("scae", stochastic_contractive_level=sigma, n_copies=4000).double()
    x = torch.rand(3, 12, generator=gen(11), dtype=torch.float64)
    h = model.encode(x).z
    torch.manual_seed(0)
    sc = model.stochastic_contraction(x, h) / sigma ** 2
    assert torch.allclose(sc, model.jacobian_frobenius_sq(x), rtol=0.05)


def test_scae_loss_term():
    model = build("scae")
    x = torch.rand(6, 12, generator=gen(12))
    lo = model.loss(x, model(x))
    assert float(lo.total.detach()) == pytest.approx(float(lo.terms["reconstruction"] + 10.0 * lo.terms["stochastic_contractive"]), rel=1e-6)


def test_linear_ae_learns_the_principal_subspace():
    from scipy.linalg import subspace_angles

    n, d, k = 2000, 20, 3
    g = gen(0)
    basis, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    x = (torch.randn(n, d, generator=g) * torch.tensor([3.0, 2.5, 2.0] + [0.3] * (d - 3))) @ basis.T + 0.5
    torch.manual_seed(0)
    model = registry.build("linear_ae", {"input_shape": [d], "latent_dim": k})
    fit(model, x, config=TrainConfig(epochs=80, batch_size=100, lr=1e-2, schedule="cosine", progress=False))
    mean = x.mean(0)
    _, _, vt = torch.linalg.svd(x - mean, full_matrices=False)
    pca_mse = float(((x - mean) @ vt[:k].T @ vt[:k] + mean - x).pow(2).mean())
    with torch.no_grad():
        ae_mse = float((model.reconstruct(x) - x).pow(2).mean())
    decoder_columns = model.decoder.mlp[0].weight.detach().double().numpy()      # (D, k)
    angles = np.degrees(subspace_angles(decoder_columns, vt[:k].T.double().numpy()))
    assert angles.max() < 1.0, angles
    assert ae_mse <= pca_mse * 1.01
    assert ae_mse >= pca_mse * 0.999       # PCA is the optimum: a linear AE cannot beat it
    terms = model.evaluation_terms(x)      # what `aekit evaluate` reports for a linear AE
    assert terms["principal_angle_max_deg"] == pytest.approx(float(angles.max()), abs=1e-3)
    assert terms["mse_over_pca"] == pytest.approx(ae_mse / pca_mse, rel=1e-4)


@pytest.mark.parametrize(
    "name, options, match",
    [
        ("sparse_ae", {"code_activation": "identity"}, "sigmoid"),
        ("linear_ae", {"activation": "relu"}, "nonlinearity"),
        ("linear_ae", {"likelihood": "bernoulli"}, "squared error"),
        ("dae", {"corruption": "blur"}, "blur"),
        ("dae", {"architecture": "conv", "input_shape": [1, 8, 8]}, "tied_weights"),
        ("scae", {"stochastic_contractive_noise": "none"}, "needs a noise"),
        ("sparse_ae", {"sparsity_target": 1.5}, "rho"),
        ("cae", {"n_copies": 0}, "n_copies"),
    ],
)
def test_config_errors(name, options, match):
    with pytest.raises(ConfigError, match=match):
        registry.build(name, {"input_shape": [12], **options})


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip_and_evaluation_terms(name, tmp_path):
    model = build(name)
    x = torch.rand(9, 12, generator=gen(13))
    model.save_pretrained(tmp_path / name)
    loaded = from_pretrained(tmp_path / name)
    assert type(loaded.config) is type(model.config) and registry.name_of(loaded) == name
    with torch.no_grad():
        assert torch.equal(loaded.embed(x), model.embed(x))
    terms = model.evaluation_terms(x)
    assert terms["jacobian_frobenius"] > 0
    if model.corrupts:
        assert {"denoise_psnr_noisy", "denoise_psnr_denoised"} <= set(terms)
    if model.config.sparsity == "kl":
        assert "sparsity_kl" in terms


def test_conv_dae_trains_and_denoises_digits():
    """A small conv DAE on 8x8 digits beats its own noisy input in PSNR after a few epochs."""
    from sklearn.datasets import load_digits

    from aekit.evaluate.image import psnr

    x = torch.tensor(load_digits().images / 16.0, dtype=torch.float32).unsqueeze(1)   # (1797, 1, 8, 8)
    torch.manual_seed(0)
    model = registry.build("dae", {"input_shape": [1, 8, 8], "architecture": "conv", "conv_channels": [16],
                                   "hidden_dims": [128], "latent_dim": 32, "activation": "relu",
                                   "tied_weights": False, "code_activation": "identity", "n_copies": 2})
    fit(model, x[:1500], config=TrainConfig(epochs=15, batch_size=50, lr=3e-3, progress=False))
    noisy = corruption.masking_noise(x[1500:], 0.25, gen(14))
    with torch.no_grad():
        denoised = model.reconstruct(noisy)
    assert float(psnr(denoised, x[1500:]).mean()) > float(psnr(noisy, x[1500:]).mean()) + 2.0


def test_denoise_command(tmp_path, capsys):
    """`aekit denoise` corrupts the clean split with the model's own noise (or --noise), writes the
    grid and a JSON report whose PSNR is the one computed directly."""
    import json

    from aekit.cli import main
    from aekit.data import load_dataset
    from aekit.evaluate.image import psnr

    model = registry.build("dae", {"input_shape": [1, 8, 8], "latent_dim": 16})
    model.save_pretrained(tmp_path / "m")
    assert main(["denoise", str(tmp_path / "m"), "--data", "digits", "--limit", "50", "--out", str(tmp_path / "g.png")]) == 0
    report = json.loads((tmp_path / "g.json").read_text())
    assert (tmp_path / "g.png").is_file() and report["noise"] == "masking" and report["level"] == 0.25
    clean = load_dataset("digits").test.x[:50]
    noisy = corruption.masking_noise(clean, 0.25, gen(0))
    assert report["metrics"]["psnr_noisy"] == pytest.approx(float(psnr(noisy, clean).mean()), rel=1e-5)
    assert "psnr_denoised" in report["metrics"]
    np.save(tmp_path / "noisy.npy", noisy.numpy())
    np.save(tmp_path / "clean.npy", clean.numpy())
    assert main(["denoise", str(tmp_path / "m"), "--noisy", str(tmp_path / "noisy.npy"), "--clean", str(tmp_path / "clean.npy"),
                 "--out", str(tmp_path / "h.png")]) == 0
    again = json.loads((tmp_path / "h.json").read_text())["metrics"]
    assert again["psnr_noisy"] == pytest.approx(report["metrics"]["psnr_noisy"], rel=1e-5)
    assert main(["denoise", str(tmp_path / "m"), "--data", "digits", "--out", str(tmp_path / "g.png")]) == 2  # exists
    plain = registry.build("ae", {"input_shape": [1, 8, 8]})
    plain.save_pretrained(tmp_path / "ae")
    capsys.readouterr()
    assert main(["denoise", str(tmp_path / "ae"), "--data", "digits", "--out", str(tmp_path / "a.png")]) == 2
    assert "--noise" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "ae"), "--data", "digits", "--noise", "gaussian", "--level", "0.3",
                 "--limit", "20", "--out", str(tmp_path / "a.png")]) == 0
    np.save(tmp_path / "clean65.npy", np.zeros((50, 65), dtype=np.float32))
    for args, match in ((["--batch-size", "0"], "--batch-size must be at least 1"),
                        (["--noise", "masking", "--level", "nan"], "must be a finite non-negative number"),
                        (["--out", str(tmp_path / "d.npy")], "must end in .png"),
                        (["--save-denoised", str(tmp_path / "d.png")], "must end in .npy or .csv or .txt"),
                        (["--noisy", str(tmp_path / "noisy.npy"), "--clean", str(tmp_path / "clean65.npy")], "expected the same images")):
        full = ["denoise", str(tmp_path / "m"), "--data", "digits", "--limit", "20", "--out", str(tmp_path / "b.png"), *args]
        capsys.readouterr()
        assert main(full) == 2, args
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err, err
    assert not (tmp_path / "b.png").exists()
