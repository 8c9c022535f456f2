"""The VQ-VAE against its definitions: nearest codes by brute force, the straight-through gradient, which
weights each quantization term moves, the moving-average codebook of the paper's appendix A.1 by hand,
dead-code restarts, and a PixelCNN prior that is causal, has no blind spot and sums to one over every
grid (enumerated)."""

from __future__ import annotations

import itertools
import math

import pytest
from conftest import abort_lines
import torch

from aekit import ConfigError, losses, registry
from aekit.config import TrainConfig
from aekit.models.pixelcnn import GatedPixelCNN, prior_covers
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
    model._update_codebook(z_e, torch.nn.functional.one_hot(codes.reshape(-1), k).float())
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
    model._update_codebook(z_e, torch.nn.functional.one_hot(codes.reshape(-1), 16).float())
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


@pytest.mark.parametrize("codebook_update", ["ema", "loss"])
def test_loss_is_equation_3_plus_the_prior_term(codebook_update):
    model = small(codebook_update=codebook_update, beta=0.7).train()
    x = torch.rand(8, 1, 8, 8)
    out = model(x)
    lo = model.loss(x, out)
    rec = out.recon.log_prob(x)
    codebook, commitment = losses.vq_codebook_and_commitment(out.latent.z_e, out.latent.z_q)
    log_pz = model.prior.log_prob(out.latent.codes)
    expected = -rec.mean() + 0.7 * commitment.mean() - log_pz.mean()
    if codebook_update == "loss":
        expected = expected + codebook.mean()
    torch.testing.assert_close(lo.total, expected)
    torch.testing.assert_close(lo.terms["commitment"], commitment.mean().detach())
    torch.testing.assert_close(lo.terms["elbo"], (rec + log_pz).mean().detach())
    # The prior's gradient comes from its own term only; the encoder's from the others only.
    encoder = list(model.encoder.parameters())
    grads = torch.autograd.grad(lo.total, [model.prior.embed.weight, *encoder], retain_graph=True)
    own = torch.autograd.grad(-log_pz.mean(), model.prior.embed.weight, retain_graph=True)[0]
    torch.testing.assert_close(grads[0], own)
    rest = -rec.mean() + 0.7 * commitment.mean()
    for g, p in zip(grads[1:], torch.autograd.grad(rest, encoder)):
        torch.testing.assert_close(g, p)


@pytest.mark.parametrize("grid, layers", [((4, 5), 4), ((1, 7), 4), ((1, 16), 6), ((1, 34), 6), ((1, 35), 6),
                                          ((8, 8), 6), ((10, 10), 6)])
def test_pixelcnn_is_causal_and_sees_every_earlier_position_when_it_covers_the_grid(grid, layers):
    torch.manual_seed(0)
    h, w = grid
    prior = GatedPixelCNN(num_codes=5, channels=8, layers=layers, rows=h).double()
    x = torch.randn(1, 8, h, w, dtype=torch.float64, requires_grad=True)
    logits = prior.logits_of_embedded(x)
    complete = True
    for i, j in itertools.product(range(h), range(w)):
        (grad,) = torch.autograd.grad(logits[0, :, i, j].sum(), x, retain_graph=True)
        seen = grad.abs().sum((0, 1)) > 0                              # (H, W)
        earlier = torch.tensor([[r * w + c < i * w + j for c in range(w)] for r in range(h)])
        assert not (seen & ~earlier).any(), (i, j)                     # never itself or a later code
        complete = complete and torch.equal(seen, earlier)
    assert complete == prior_covers(grid, layers)                     # (1, 35) and (10, 10) are not covered


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
    # Without restarts the 120 steps leave 7 of 32 codes in use (perplexity 4), with them 23 (14).
    assert used[0.5]["codes_used"] >= 2 * used[0.0]["codes_used"], used
    assert used[0.5]["code_perplexity"] >= 2 * used[0.0]["code_perplexity"], used


def test_bad_options_are_clear_errors():
    with pytest.raises(ConfigError, match="ema_decay"):
        VQVAEConfig(ema_decay=1.0)
    with pytest.raises(ConfigError, match="codebook_update"):
        VQVAEConfig(codebook_update="kmeans")
    with pytest.raises(ConfigError, match="num_codes"):
        VQVAEConfig(num_codes=1)
    with pytest.raises(ConfigError, match="restart_threshold=1.0 must be below 1"):
        VQVAEConfig(restart_threshold=1.0)
    with pytest.raises(ConfigError, match="output_bias='data' is for the MLP decoder"):
        VQVAEConfig(input_shape=(1, 8, 8), architecture="conv", output_bias="data")
    with pytest.raises(ConfigError, match="use prior_layers=7 or more"):
        VQVAEConfig(latent_positions=40, prior_layers=6)
    VQVAEConfig(latent_positions=40, prior_layers=7)
    VQVAEConfig(latent_positions=40, prior_layers=2, prior="uniform")   # no PixelCNN: nothing to cover
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


_DDP_SCRIPT = """
import sys, torch, torch.distributed as td
from aekit.data import load_dataset
from aekit.models.vqvae import VQVAE, VQVAEConfig
from aekit.config import TrainConfig
from aekit.train import fit
torch.set_num_threads(1)
x = load_dataset("digits").train.x[:256]
torch.manual_seed(0)
m = VQVAE(VQVAEConfig(input_shape=(1, 8, 8), latent_dim=4, num_codes=64, latent_positions=6, hidden_dims=(32,),
                      prior="uniform", codebook_update=sys.argv[1], restart_threshold=0.99))
fit(m, x, config=TrainConfig(epochs=2, batch_size=32, progress=False, seed=0))
books = [torch.zeros_like(m.codebook.detach()) for _ in range(2)]
td.all_gather(books, m.codebook.detach().contiguous())
if td.get_rank() == 0:
    print("rows differing:", int((books[0] != books[1]).any(1).sum()))
"""


def test_ranks_keep_one_codebook_under_ddp(tmp_path):
    """Restarts draw their candidates on rank 0: with the codebook a parameter (codebook_update="loss"),
    which DDP does not broadcast as it does the moving-average buffers, per-rank draws left the ranks
    with different codebooks."""
    codebook_update = "loss"
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed next to this Python")
    script = tmp_path / "ddp_vq.py"
    script.write_text(_DDP_SCRIPT)
    src = str(Path(__file__).resolve().parents[1] / "src")
    for _ in range(2):   # a second try tells an environmental gloo abort on a loaded machine from a failure
        p = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), codebook_update], capture_output=True,
                           text=True, env={"PYTHONPATH": src, "PATH": "", "OMP_NUM_THREADS": "1"}, timeout=300)
        if p.returncode == 0:
            break
    assert p.returncode == 0, abort_lines(p.stderr) + p.stderr[-2000:]
    assert "rows differing: 0" in p.stdout, p.stdout


def test_latent_dimension_study_refuses_the_vq_vae_before_training(tmp_path):
    from aekit.data import load_dataset
    from aekit.evaluate.studies import latent_dim_study

    with pytest.raises(ConfigError, match="point-mass q"):
        latent_dim_study(load_dataset("digits"), [2], model="vqvae", out_dir=tmp_path / "s", log=lambda _: None)
    assert not (tmp_path / "s").exists()


def test_prior_fitted_after_training_leaves_the_autoencoder_as_it_was(digits_batch):
    x, _ = digits_batch
    model = small()
    fit(model, x, None, config=TrainConfig(epochs=3, batch_size=16, progress=False))
    stage2 = model.with_frozen_autoencoder()
    assert stage2.config.train_prior_only and not model.config.train_prior_only
    before = {k: v.clone() for k, v in stage2.state_dict().items()}
    codes = model.eval().encode(x).codes
    nll_before = float(-stage2.prior.log_prob(codes).mean().detach())
    fit(stage2, x, None, config=TrainConfig(epochs=5, batch_size=16, lr=3e-3, progress=False))
    after = stage2.state_dict()
    changed = {k for k in before if k != "train_step" and not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("prior.") for k in changed), changed
    assert torch.equal(stage2.eval().encode(x).codes, codes)
    assert float(-stage2.prior.log_prob(codes).mean().detach()) < nll_before - 1.0
    with pytest.raises(ConfigError, match="nothing to train"):
        VQVAEConfig(prior="uniform", train_prior_only=True)
