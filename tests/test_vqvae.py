"""The VQ-VAE against its definitions: nearest codes by brute force, the straight-through gradient, which
weights each quantization term moves, the moving-average codebook of the paper's appendix A.1 by hand,
dead-code restarts, and a PixelCNN prior that is causal, has no blind spot and sums to one over every
grid (enumerated)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from aekit import ConfigError, losses, registry
from aekit.config import TrainConfig
from aekit.models.pixelcnn import GatedPixelCNN
from aekit.models.vqvae import VQVAE, VQVAEConfig
from aekit.train import fit


def small(**extra) -> VQVAE:
    torch.manual_seed(0)
    opts = dict(input_shape=[1, 8, 8], latent_dim=4, num_codes=16, latent_positions=6, hidden_dims=[32],
                prior_channels=16, prior_layers=3)
    return VQVAE(VQVAEConfig.from_dict({**opts, **extra}))


def test_nearest_code_is_the_brute_force_argmin():
    g = torch.Generator().manual_seed(0)
    z, e = torch.randn(300, 5, generator=g), torch.randn(40, 5, generator=g)
    expected = torch.cdist(z.double(), e.double()).argmin(1)
    assert torch.equal(losses.nearest_code(z, e), expected)


def test_straight_through_forwards_z_q_and_passes_the_gradient_to_z_e():
    z_e = torch.randn(3, 4, requires_grad=True)
    z_q = torch.randn(3, 4, requires_grad=True)
    out = losses.straight_through(z_e, z_q)
    torch.testing.assert_close(out, z_q)
    upstream = torch.randn(3, 4)
    out.backward(upstream)
    torch.testing.assert_close(z_e.grad, upstream)
    assert z_q.grad is None


def test_codebook_term_moves_only_codes_and_commitment_only_the_encoder():
    z_e = torch.randn(2, 3, 2, 2, requires_grad=True)
    z_q = torch.randn(2, 3, 2, 2, requires_grad=True)
    codebook, commitment = losses.vq_codebook_and_commitment(z_e, z_q)
    expected = (z_e - z_q).pow(2).sum((1, 2, 3))
    torch.testing.assert_close(codebook, expected)
    torch.testing.assert_close(commitment, expected)
    codebook.sum().backward(retain_graph=True)
    assert z_e.grad is None
    torch.testing.assert_close(z_q.grad, 2 * (z_q - z_e).detach())
    z_q.grad = None
    commitment.sum().backward()
    assert z_q.grad is None
    torch.testing.assert_close(z_e.grad, 2 * (z_e - z_q).detach())


def test_code_perplexity_is_k_for_uniform_use_and_one_for_a_single_code():
    assert float(losses.code_perplexity(torch.full((8,), 5))) == pytest.approx(8.0)
    assert float(losses.code_perplexity(torch.tensor([0, 9, 0, 0]))) == pytest.approx(1.0)
    p = torch.tensor([1.0, 3.0])
    h = -(p / 4 * torch.log(p / 4)).sum()
    assert float(losses.code_perplexity(p)) == pytest.approx(float(torch.exp(h)))


def test_moving_average_codebook_follows_appendix_a1():
    model = small(restart_threshold=0.0).train()
    k, d, g = 16, 4, 0.99
    count0, sum0 = model.ema_count.clone(), model.ema_sum.clone()
    z_e = torch.randn(5, d, 1, 6)
    codes, _ = model.quantize(z_e)
    model._update_codebook(z_e, codes)
    rows = z_e.permute(0, 2, 3, 1).reshape(-1, d)
    flat = codes.reshape(-1)
    n = torch.stack([(flat == i).sum() for i in range(k)]).float()
    s = torch.stack([rows[flat == i].sum(0) for i in range(k)])
    count = g * count0 + (1 - g) * n
    total = count.sum()
    smoothed = (count + 1e-5) / (total + k * 1e-5) * total
    torch.testing.assert_close(model.ema_count, count)
    torch.testing.assert_close(model.codebook, (g * sum0 + (1 - g) * s) / smoothed.unsqueeze(1))


def test_unused_codes_restart_at_encoder_outputs_of_the_batch():
    model = small(restart_threshold=0.5).train()
    z_e = torch.randn(4, 4, 1, 6)
    model.usage.fill_(1.0 / 16)
    model.usage[3] = 0.4 / 16                     # code 3: below half an even share
    codes, _ = model.quantize(z_e)
    model._update_codebook(z_e, codes)
    rows = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
    assert (model.codebook[3] == rows).all(1).any()         # now one of the batch's vectors
    assert float(model.usage[3]) == 1.0 / 16 and float(model.ema_count[3]) == 1.0
    assert (model.usage[torch.arange(16) != 3] >= 0.99 / 16).all()   # the others kept their codes
    torch.testing.assert_close(model.ema_sum[3], model.codebook[3])


def test_moving_average_mode_has_no_codebook_gradient_and_loss_mode_only_the_codebook_terms():
    x = torch.rand(8, 1, 8, 8)
    ema = small()
    assert not any(p is ema.codebook for p in ema.parameters())
    model = small(codebook_update="loss", prior="uniform").train()
    out = model(x)
    model.loss(x, out).total.backward(retain_graph=True)
    got = model.codebook.grad.clone()
    # The same gradient from the codebook term alone: the decoder's gradient stops at z_q (straight-through).
    model.codebook.grad = None
    codebook, _ = losses.vq_codebook_and_commitment(out.latent.z_e, out.latent.z_q)
    codebook.mean().backward()
    torch.testing.assert_close(got, model.codebook.grad)


def test_the_prior_term_moves_only_the_prior():
    model = small().train()
    x = torch.rand(8, 1, 8, 8)
    out = model(x)
    (-model.prior_log_prob(out.latent.codes).mean()).backward()
    moved = {name for name, p in model.named_parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0)}
    assert moved and all(name.startswith("prior.") for name in moved), moved


@pytest.mark.parametrize("grid", [(4, 5), (1, 7)])
def test_pixelcnn_is_causal_and_sees_every_earlier_position(grid):
    torch.manual_seed(0)
    h, w = grid
    prior = GatedPixelCNN(num_codes=5, channels=8, layers=4, rows=h).double()
    x = torch.randn(1, 8, h, w, dtype=torch.float64, requires_grad=True)
    logits = prior.logits_of_embedded(x)
    for i, j in itertools.product(range(h), range(w)):
        (grad,) = torch.autograd.grad(logits[0, :, i, j].sum(), x, retain_graph=True)
        seen = grad.abs().sum((0, 1)) > 0                              # (H, W)
        earlier = torch.tensor([[r * w + c < i * w + j for c in range(w)] for r in range(h)])
        assert torch.equal(seen, earlier), (i, j)


def test_pixelcnn_probabilities_sum_to_one_over_every_grid():
    torch.manual_seed(0)
    prior = GatedPixelCNN(num_codes=3, channels=8, layers=2).double()
    grids = torch.tensor(list(itertools.product(range(3), repeat=4))).reshape(-1, 2, 2)   # all 81 grids
    total = torch.logsumexp(prior.log_prob(grids), 0)
    assert float(total.detach()) == pytest.approx(0.0, abs=1e-10)


def test_pixelcnn_samples_follow_its_probabilities():
    torch.manual_seed(0)
    prior = GatedPixelCNN(num_codes=2, channels=8, layers=2, rows=1)
    with torch.no_grad():
        prior.out[-1].bias.copy_(torch.tensor([0.0, 1.0]))
    grids = torch.tensor(list(itertools.product(range(2), repeat=3))).reshape(-1, 1, 3)
    p = prior.log_prob(grids).exp().detach()
    draws = prior.sample(20000, (1, 3), generator=torch.Generator().manual_seed(1))
    index = (draws.reshape(-1, 3) * torch.tensor([4, 2, 1])).sum(1)
    freq = torch.bincount(index, minlength=8).float() / 20000
    assert (freq - p).abs().max() < 4 * math.sqrt(0.25 / 20000), (freq, p)


def test_bound_terms_use_the_prior_and_the_uniform_prior_is_m_log_k():
    x = torch.rand(5, 1, 8, 8)
    model = small(prior="uniform").eval()
    t = model.elbo_terms(x)
    torch.testing.assert_close(t["kl"], torch.full((5,), 6 * math.log(16)))
    torch.testing.assert_close(t["elbo"], t["log_px_given_z"] - t["kl"])
    learned = small().eval()
    t = learned.elbo_terms(x)
    torch.testing.assert_close(t["kl"], -learned.prior.log_prob(learned.encode(x).codes))


def test_decode_of_from_codes_is_reconstruct():
    model = small().eval()
    x = torch.rand(5, 1, 8, 8)
    codes = model.encode(x).codes
    torch.testing.assert_close(model.decode(model.from_codes(codes)).mean(), model.reconstruct(x))


def test_conv_grid_and_restarts_keep_the_codebook_in_use(digits_batch):
    x, _ = digits_batch
    used = {}
    for threshold in (0.0, 0.5):   # 0.5: a code unused for about 70 steps restarts
        model = small(architecture="conv", conv_channels=[16, 16], residual_blocks=1, num_codes=32,
                      restart_threshold=threshold)
        assert model.grid == (2, 2) and model.latent_dim == 16
        fit(model, x, None, config=TrainConfig(epochs=30, batch_size=16, lr=2e-3, progress=False))
        used[threshold] = model.evaluation_terms(x)
    # Without restarts the 120 steps leave 7 of 32 codes in use (perplexity 4), with them 24 (14).
    assert used[0.5]["codes_used"] >= 2 * used[0.0]["codes_used"], used
    assert used[0.5]["code_perplexity"] >= 2 * used[0.0]["code_perplexity"], used


def test_bad_options_are_clear_errors():
    with pytest.raises(ConfigError, match="ema_decay"):
        VQVAEConfig(ema_decay=1.0)
    with pytest.raises(ConfigError, match="codebook_update"):
        VQVAEConfig(codebook_update="kmeans")
    with pytest.raises(ConfigError, match="num_codes"):
        VQVAEConfig(num_codes=1)
    assert "vqvae" in registry.REGISTRY


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_learned_scale_decoders_give_one_value_per_input(architecture):
    model = small(architecture=architecture, conv_channels=[8, 8], likelihood="discretized_logistic",
                  decoder_variance="learned").eval()
    x = torch.rand(5, 1, 8, 8)
    out = model(x)
    assert out.recon.loc.shape == x.shape and out.recon.logvar.shape == x.shape
    assert out.recon.log_prob(x).shape == (5,)
    assert model.reconstruct(x).shape == x.shape
