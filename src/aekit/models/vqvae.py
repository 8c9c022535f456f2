"""The vector-quantized VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation
Learning", arXiv 1711.00937).

The encoder gives z_e(x), a grid of M vectors of size D (a conv map (D, H', W'), or M slots of an MLP
output); each is replaced by its nearest code e_k of a codebook (K, D), and the decoder reads the
quantized grid z_q(x). Training minimises (eq. 3, per example, summed over positions)

    -log p(x | z_q(x)) + ||sg[z_e(x)] - e||^2 + beta ||z_e(x) - sg[e]||^2,

with the decoder's gradient copied from z_q to z_e (straight-through). ``codebook_update="ema"`` replaces
the codebook term by exponential moving averages of the code counts and sums (appendix A.1: N_k <-
g N_k + (1-g) n_k, m_k <- g m_k + (1-g) sum z_e, e_k = m_k / N_k, with Laplace smoothing of N), which
trains faster. A code whose moving-average share of the assignments falls below ``restart_threshold``
times an even share (1/K) is restarted at an encoder output of the current batch (as in Dhariwal et al.
2020, Jukebox, whose threshold counts assignments per batch instead; a share does not depend on the
batch size), so the codebook does not collapse to a few codes. A restarted code gets an even share,
and a code no position chooses falls below 0.03 of it after about 350 steps at decay 0.99.

The prior. q(z|x) is a point mass on the nearest codes, so KL(q || p) = -log p(z(x)), and with a
uniform prior it is the constant M log K. A gated PixelCNN (models/pixelcnn.py) over the code grid is
the learned prior p(z): it is trained in the same loop on the detached codes (its loss moves only its
own weights), ``sample`` draws codes from it and decodes them, and the bound

    log p(x) >= log p(x | z_q(x)) + log p(z(x))

is ``elbo_terms``. Because q is a point mass, importance sampling cannot tighten it: the VQ-VAE
defines no ``log_importance_weights`` and evaluators report this bound. ``prior="uniform"`` keeps the
paper's training-time prior (no PixelCNN; samples then draw codes uniformly). The paper fits the prior
after the VQ-VAE instead: ``model.with_frozen_autoencoder()`` gives a copy (config
``train_prior_only=True``) whose encoder, decoder and codebook stay fixed in training, so that only
the PixelCNN learns, on codes that no longer move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import nn

from .. import losses
from ..config import ModelConfig, check_choice, check_positive
from ..errors import ConfigError, DataError
from ..nn import LIKELIHOODS, Decoder, DecoderOutput, Encoder, OutputHead, activation
from .base import Autoencoder, LossOutput
from .pixelcnn import GatedPixelCNN, min_prior_layers, prior_covers

CODEBOOK_UPDATES = ("ema", "loss")
PRIORS = ("pixelcnn", "uniform")


@dataclass(frozen=True)
class VQVAEConfig(ModelConfig):
    """``latent_dim`` is the size D of one code vector; ``num_codes`` the codebook size K.

    MLP: the encoder's output is ``latent_positions`` slots of D. Conv: stride-2 4x4 convolutions
    (``conv_channels``), ``residual_blocks`` blocks (ReLU, 3x3, ReLU, 1x1) and a 1x1 convolution to D
    give a (D, H / 2^L, W / 2^L) grid; the decoder mirrors it. The paper's CIFAR-10 model is
    conv_channels=[256, 256], residual_blocks=2, num_codes=512, beta=0.25 (benchmarks/vqvae.py, with
    latent_dim=64 there).
    """

    latent_dim: int = 16
    hidden_dims: tuple[int, ...] = (400,)
    num_codes: int = 512
    latent_positions: int = 16          # MLP only
    residual_blocks: int = 2            # conv only
    beta: float = 0.25                  # commitment weight
    codebook_update: str = "ema"        # "ema" (appendix A.1) or "loss" (the codebook term of eq. 3)
    ema_decay: float = 0.99
    restart_threshold: float = 0.03     # restart a code below this fraction of an even share of use; 0 = off
    likelihood: str = "gaussian"
    decoder_variance: str = "fixed"
    decoder_std: float = 1.0
    prior: str = "pixelcnn"
    prior_channels: int = 64
    prior_layers: int = 6
    train_prior_only: bool = False      # the paper's second stage: only the PixelCNN learns

    def validate(self) -> None:
        super().validate()
        check_choice("likelihood", self.likelihood, LIKELIHOODS)
        check_choice("decoder_variance", self.decoder_variance, ("fixed", "learned"))
        check_positive("decoder_std", self.decoder_std)
        check_choice("codebook_update", self.codebook_update, CODEBOOK_UPDATES)
        check_choice("prior", self.prior, PRIORS)
        for name in ("num_codes", "latent_positions", "prior_channels", "prior_layers"):
            check_positive(name, getattr(self, name))
        check_positive("residual_blocks", self.residual_blocks, allow_zero=True)
        check_positive("beta", self.beta, allow_zero=True)
        check_positive("restart_threshold", self.restart_threshold, allow_zero=True)
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay={self.ema_decay!r} must lie strictly between 0 and 1 (the paper uses 0.99).")
        if self.num_codes < 2:
            raise ConfigError(f"num_codes={self.num_codes!r}: a codebook needs at least two codes.")
        if self.restart_threshold >= 1:
            raise ConfigError(f"restart_threshold={self.restart_threshold!r} must be below 1: it is a fraction of an "
                              "even share of use (1/num_codes), and at 1 or more every code would restart at every step.")
        if self.architecture == "conv" and self.output_bias == "data":
            raise ConfigError("output_bias='data' is for the MLP decoder; the conv VQ-VAE's decoder starts from "
                              "its own initialization (use output_bias='zero').")
        if self.train_prior_only and self.prior != "pixelcnn":
            raise ConfigError("train_prior_only=True trains the PixelCNN prior alone; with prior='uniform' there is "
                              "nothing to train.")
        if self.prior == "pixelcnn" and not prior_covers(self.grid, self.prior_layers):
            need = min_prior_layers(self.grid)
            raise ConfigError(f"prior_layers={self.prior_layers} lets each code of the {self.grid[0]}x{self.grid[1]} "
                              f"grid see only part of the codes before it; use prior_layers={need} or more.")

    @property
    def grid(self) -> tuple[int, int]:
        """(H', W') of the code grid: the conv map's size, or one row of ``latent_positions`` codes."""
        if self.architecture == "conv":
            factor = 2 ** len(self.conv_channels)
            return (self.input_shape[1] // factor, self.input_shape[2] // factor)
        return (1, self.latent_positions)


@dataclass
class CodeLatent:
    """The quantized latent of a batch: ``codes`` (N, H', W') indices, ``z_e`` the encoder's grid and
    ``z_q`` its quantized copy, both (N, D, H', W'). ``mean`` is z_q flattened position by position,
    (N, H' * W' * D): the code vector of each position in raster order, each D values contiguous."""

    codes: torch.Tensor
    z_e: torch.Tensor
    z_q: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        return self.z_q.permute(0, 2, 3, 1).reshape(self.z_q.shape[0], -1)


@dataclass
class VQVAEOutput:
    latent: CodeLatent
    recon: DecoderOutput        # decoded from the straight-through z_q
    counts: torch.Tensor        # (K,) how many of the batch's positions chose each code


class _Residual(nn.Module):
    """x + 1x1(ReLU(3x3(ReLU(x)))), the paper's residual block."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _conv_encoder(c: VQVAEConfig) -> nn.Module:
    layers: list[nn.Module] = []
    cin = c.input_shape[0]
    for i, ch in enumerate(c.conv_channels):
        layers.append(nn.Conv2d(cin, ch, 4, stride=2, padding=1))
        if i < len(c.conv_channels) - 1:
            layers.append(activation(c.activation))
        cin = ch
    layers += [_Residual(cin) for _ in range(c.residual_blocks)]
    layers += [nn.ReLU(), nn.Conv2d(cin, c.latent_dim, 1)]
    return nn.Sequential(*layers)


def _conv_decoder(c: VQVAEConfig, mult: int) -> nn.Module:
    chans = list(reversed(c.conv_channels))
    layers: list[nn.Module] = [nn.Conv2d(c.latent_dim, chans[0], 3, padding=1)]
    layers += [_Residual(chans[0]) for _ in range(c.residual_blocks)]
    layers.append(nn.ReLU())
    outs = chans[1:] + [c.input_shape[0] * mult]
    for i, cout in enumerate(outs):
        layers.append(nn.ConvTranspose2d(chans[i], cout, 4, stride=2, padding=1))
        if i < len(outs) - 1:
            layers.append(activation(c.activation))
    return nn.Sequential(*layers)


class VQVAE(Autoencoder):
    config_class = VQVAEConfig
    is_generative = True
    has_likelihood = True   # the bound log p(x|z_q) + log p(z); see the module doc

    def __init__(self, config: VQVAEConfig):
        super().__init__(config)
        c = config
        self.grid = c.grid
        self.head = OutputHead(c.likelihood, c.decoder_variance, c.decoder_std)
        mult = self.head.channels_mult
        if c.architecture == "conv":
            self.encoder: nn.Module = _conv_encoder(c)
            self.decoder: nn.Module = _conv_decoder(c, mult)
        else:
            flat = c.latent_dim * c.latent_positions
            self.encoder = Encoder(c, flat)
            self.decoder = Decoder(c.replace(latent_dim=flat), mult)
        k, d = c.num_codes, c.latent_dim
        if c.codebook_update == "ema":
            # e_k = m_k / N_k; N starts at 1 so the initial codes are the drawn m.
            self.register_buffer("codebook", torch.randn(k, d))
            self.register_buffer("ema_count", torch.ones(k))
            self.register_buffer("ema_sum", self.codebook.clone())
        else:
            self.codebook = nn.Parameter(torch.empty(k, d).uniform_(-1.0 / k, 1.0 / k))
        # Moving average of each code's share of the assignments (an even share is 1/K): what restarts dead codes.
        self.register_buffer("usage", torch.full((k,), 1.0 / k))
        self.prior = (GatedPixelCNN(k, c.prior_channels, c.prior_layers, rows=self.grid[0])
                      if c.prior == "pixelcnn" else None)
        if c.train_prior_only:   # no gradient reaches these; the codebook's updates are off in forward
            for module in (self.encoder, self.decoder, self.head):
                module.requires_grad_(False)
            self.codebook.requires_grad_(False)

    def with_frozen_autoencoder(self) -> "VQVAE":
        """A copy of this model, weights and preprocessing included, with ``train_prior_only=True``:
        training it (``aekit.train.fit``) fits the PixelCNN prior to the codes of the fixed encoder and
        codebook, as the paper does after training the VQ-VAE."""
        copy = type(self)(self.config.replace(train_prior_only=True))
        copy.load_state_dict(self.state_dict())
        copy.preprocessing = self.preprocessing
        return copy.to(self.codebook.device)

    @property
    def latent_dim(self) -> int:
        """Width of ``embed``: D times the number of code positions."""
        return self.config.latent_dim * self.grid[0] * self.grid[1]

    # -- quantization -----------------------------------------------------------------------------
    def _grid(self, h: torch.Tensor) -> torch.Tensor:
        """Encoder output -> (N, D, H', W')."""
        if self.config.architecture == "conv":
            return h
        n = h.shape[0]   # MLP slots: (N, M * D) -> (N, M, D) -> (N, D, 1, M)
        return h.reshape(n, self.config.latent_positions, self.config.latent_dim).permute(0, 2, 1).unsqueeze(2)

    def _ungrid(self, z: torch.Tensor) -> torch.Tensor:
        """(N, D, H', W') -> what the decoder reads."""
        if self.config.architecture == "conv":
            return z
        return z.squeeze(2).permute(0, 2, 1).reshape(z.shape[0], -1)

    def _decode_grid(self, z: torch.Tensor) -> DecoderOutput:
        """p(x | z) for a grid (N, D, H', W'). A conv decoder with two heads (a learned scale) gives
        (N, 2 C, H, W), split by head into (N, 2, C, H, W) as the OutputHead expects."""
        raw = self.decoder(self._ungrid(z))
        if self.config.architecture == "conv" and self.head.channels_mult > 1:
            raw = raw.reshape(raw.shape[0], self.head.channels_mult, *self.config.input_shape)
        return self.head(raw)

    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codes of a grid (N, D, H', W') -> (codes (N, H', W'), z_q (N, D, H', W'))."""
        n, d, h, w = z_e.shape
        rows = z_e.permute(0, 2, 3, 1).reshape(-1, d)                   # (N H' W', D)
        codes = losses.nearest_code(rows, self.codebook)
        z_q = self.codebook.index_select(0, codes).to(z_e.dtype)
        return codes.reshape(n, h, w), z_q.reshape(n, h, w, d).permute(0, 3, 1, 2)

    def from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Code indices (N, H', W') -> the flattened quantized vectors (N, latent_dim) ``decode`` reads."""
        return self.codebook.index_select(0, codes.reshape(-1)).reshape(codes.shape[0], -1)

    @torch.no_grad()
    def _update_codebook(self, z_e: torch.Tensor, assign: torch.Tensor) -> None:
        """The moving averages of appendix A.1 and the restart of unused codes; training mode only.
        ``assign`` is the one-hot assignment (R, K) of the grid's R vectors. Sums are one matmul and
        the restart a masked select, so nothing here waits on the device (no host sync) and the result
        is deterministic on a GPU too. Under torch.distributed the counts and sums are summed over
        processes and the restart candidates come from process 0, so every copy keeps one codebook."""
        c, k = self.config, self.config.num_codes
        rows = z_e.detach().permute(0, 2, 3, 1).reshape(-1, z_e.shape[1]).float()   # (R, D)
        counts = assign.sum(0)                                                       # (K,)
        sums = assign.t() @ rows if c.codebook_update == "ema" else None              # (K, D)
        distributed = torch_dist.is_available() and torch_dist.is_initialized()
        if distributed:
            torch_dist.all_reduce(counts)
            if sums is not None:
                torch_dist.all_reduce(sums)
        g = c.ema_decay
        self.usage.mul_(g).add_(counts / counts.sum(), alpha=1 - g)
        if sums is not None:
            self.ema_count.mul_(g).add_(counts, alpha=1 - g)
            self.ema_sum.mul_(g).add_(sums, alpha=1 - g)
            total = self.ema_count.sum()
            smoothed = (self.ema_count + 1e-5) / (total + k * 1e-5) * total   # Laplace smoothing
            self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))
        if c.restart_threshold > 0:
            dead = (self.usage < c.restart_threshold / k).unsqueeze(1)          # (K, 1)
            fresh = rows.index_select(0, torch.randint(rows.shape[0], (k,), device=rows.device))   # (K, D)
            if distributed:
                torch_dist.broadcast(fresh, src=0)
            self.codebook.data.copy_(torch.where(dead, fresh.to(self.codebook.dtype), self.codebook.data))
            self.usage.copy_(torch.where(dead.squeeze(1), torch.full_like(self.usage, 1.0 / k), self.usage))
            if sums is not None:   # a restarted code's averages start as one assignment of `fresh`
                self.ema_count.copy_(torch.where(dead.squeeze(1), torch.ones_like(self.ema_count), self.ema_count))
                self.ema_sum.copy_(torch.where(dead, fresh, self.ema_sum))

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Before the first step (the trainer calls it): besides ``output_bias``, start the codebook at
        encoder outputs of randomly chosen training rows (as Jukebox does), so that every code starts
        where some data encodes rather than at a draw the encoder's outputs may never come near."""
        if self.config.train_prior_only:   # the codebook is the trained one
            return
        super().init_from_data(x)
        k = self.config.num_codes
        m = self.grid[0] * self.grid[1]
        g = torch.Generator().manual_seed(0)
        rows = torch.randperm(x.shape[0], generator=g)[: min(x.shape[0], max(64, 2 * math.ceil(k / m)))]
        z_e = self._grid(self.encoder(x[rows].to(self.codebook.device)))
        vectors = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1]).float()            # (R, D)
        if vectors.shape[0] >= k:
            pick = torch.randperm(vectors.shape[0], generator=g)[:k]
        else:
            pick = torch.randint(vectors.shape[0], (k,), generator=g)
        self.codebook.data.copy_(vectors[pick.to(vectors.device)])
        if self.config.codebook_update == "ema":
            self.ema_count.fill_(1.0)
            self.ema_sum.copy_(self.codebook)

    # -- the contract -----------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> CodeLatent:
        z_e = self._grid(self.encoder(x))
        codes, z_q = self.quantize(z_e)
        return CodeLatent(codes, z_e, z_q)

    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The quantized vectors of x, flattened: (N, latent_dim)."""
        return self.encode(x).mean

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> DecoderOutput:
        """p(x | z) for flattened code vectors z (N, latent_dim), quantized or not (interpolations)."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise DataError(f"VQVAE decodes vectors of shape (N, {self.latent_dim}); got {tuple(z.shape)}.")
        n, (h, w) = z.shape[0], self.grid
        grid = z.reshape(n, h, w, self.config.latent_dim).permute(0, 3, 1, 2)
        return self._decode_grid(grid)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> VQVAEOutput:
        latent = self.encode(x)
        assign = torch.nn.functional.one_hot(latent.codes.reshape(-1), self.config.num_codes).float()   # (R, K)
        if self.training and not self.config.train_prior_only:
            self._update_codebook(latent.z_e, assign)
        z = losses.straight_through(latent.z_e, latent.z_q)
        return VQVAEOutput(latent, self._decode_grid(z), assign.sum(0))

    def prior_log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """log p(z) of code grids (N, H', W') -> (N,): the PixelCNN's, or -M log K under a uniform prior."""
        if self.prior is None:
            m = codes.shape[1] * codes.shape[2]
            return torch.full((codes.shape[0],), -m * math.log(self.config.num_codes), device=codes.device)
        return self.prior.log_prob(codes)

    def loss(self, x: torch.Tensor, out: VQVAEOutput, y: torch.Tensor | None = None) -> LossOutput:
        c = self.config
        rec = out.recon.log_prob(x)                                                   # (N,)
        codebook, commitment = losses.vq_codebook_and_commitment(out.latent.z_e, out.latent.z_q)
        total = -rec.mean() + c.beta * commitment.mean()
        if c.codebook_update == "loss":
            total = total + codebook.mean()
        log_pz = self.prior_log_prob(out.latent.codes.detach())                      # (N,)
        if self.prior is not None:
            total = total - log_pz.mean()   # moves only the prior: its input is the detached codes
        return LossOutput(total, {
            "reconstruction": -rec.mean().detach(),
            "commitment": commitment.mean().detach(),
            "prior_nll": -log_pz.mean().detach(),
            "elbo": (rec + log_pz).mean().detach(),
            "perplexity": losses.code_perplexity(out.counts).detach(),
        })

    def elbo_terms(self, x: torch.Tensor, y: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """log p(x) >= log p(x | z_q(x)) + log p(z(x)) per example, with its terms ("log_px_given_z" and
        "kl" = -log p(z(x)), the KL of a point-mass q); each (N,) in nats. Deterministic."""
        latent = self.encode(x)
        rec = self.decode(latent.mean).log_prob(x)
        kl = -self.prior_log_prob(latent.codes)
        return {"elbo": rec - kl, "log_px_given_z": rec, "kl": kl}

    @torch.no_grad()
    def evaluation_terms(self, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000) -> dict[str, float]:
        """Codebook use over x: the perplexity of the code frequencies and the number of codes used."""
        was = self.training
        self.eval()
        counts = torch.zeros(self.config.num_codes, dtype=torch.long, device=self.codebook.device)
        for start in range(0, x.shape[0], batch_size):
            codes = self.encode(x[start:start + batch_size].to(self.codebook.device)).codes
            counts += torch.bincount(codes.reshape(-1), minlength=self.config.num_codes)
        self.train(was)
        return {"code_perplexity": float(losses.code_perplexity(counts)), "codes_used": float((counts > 0).sum())}

    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means of code grids drawn from the prior (the PixelCNN, or uniform), (n, *input_shape)."""
        device = self.codebook.device
        if self.prior is None:
            codes = torch.randint(self.config.num_codes, (n, *self.grid), generator=generator, device=device)
        else:
            codes = self.prior.sample(n, self.grid, generator=generator)
        return self.decode(self.from_codes(codes)).mean()
