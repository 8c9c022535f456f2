"""The variational autoencoder (Kingma & Welling 2013, "Auto-Encoding Variational Bayes").

q(z|x) = N(mu(x), diag sigma^2(x)), p(z) = N(0, I), p(x|z) from aekit.nn.LIKELIHOODS (Bernoulli,
Gaussian with fixed or learned variance, continuous Bernoulli, discretized logistic). The SGVB
estimator with L reparameterized samples and the analytic KL (their eq. 10):

    ELBO(x) = -KL(q(z|x) || p(z)) + (1/L) sum_l log p(x | z_l),   z_l = mu + sigma * eps_l.

Variants that change a coefficient are config fields: ``beta`` (beta-VAE, Higgins et al. 2017),
capacity annealing gamma |KL - C| with C rising linearly (Burgess et al. 2018), KL warm-up
(Bowman et al. 2016; Sonderby et al. 2016) and free bits (Kingma et al. 2016). The schedules
(warm-up, capacity) act in training mode only; in eval mode the loss uses their final values, so
validation losses of different epochs measure the same objective.

``log_importance_weights`` gives log p(x, z) - log q(z|x) for k samples, which
``aekit.evaluate.likelihood.log_likelihood`` averages into the bound of Burda et al. 2015.
The conditional VAE (models/cvae.py) reuses all of it through ``condition``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import losses
from ..config import ModelConfig, check_choice, check_positive
from ..errors import ConfigError, DataError
from ..nn import LIKELIHOODS, Decoder, DecoderOutput, Encoder, OutputHead
from .base import Autoencoder, GaussianLatent, LossOutput, one_hot


@dataclass(frozen=True)
class VAEConfig(ModelConfig):
    latent_dim: int = 20
    likelihood: str = "bernoulli"
    decoder_variance: str = "fixed"   # Gaussian / logistic scale: "fixed" (decoder_std) or "learned" per pixel
    decoder_std: float = 1.0
    n_samples: int = 1                # L, Monte-Carlo samples per input
    beta: float = 1.0
    kl_warmup_steps: int = 0          # KL weight rises linearly from 0 to beta over these steps
    free_bits: float = 0.0            # nats per latent dimension (0 = off)
    capacity_max: float = 0.0         # C_max in nats (0 = off); loss uses gamma |KL - C|
    capacity_steps: int = 0
    capacity_gamma: float = 1000.0
    # NaN in the data marks a missing value: the encoder sees 0 there and the likelihood counts the
    # observed values only (the MIWAE of Mattei & Frellsen 2019 with the iwae model; here with L samples)
    missing_values: bool = False

    def validate(self) -> None:
        super().validate()
        check_choice("likelihood", self.likelihood, LIKELIHOODS)
        check_choice("decoder_variance", self.decoder_variance, ("fixed", "learned"))
        check_positive("decoder_std", self.decoder_std)
        check_positive("n_samples", self.n_samples)
        check_positive("beta", self.beta, allow_zero=True)
        check_positive("kl_warmup_steps", self.kl_warmup_steps, allow_zero=True)
        check_positive("free_bits", self.free_bits, allow_zero=True)
        check_positive("capacity_max", self.capacity_max, allow_zero=True)
        check_positive("capacity_steps", self.capacity_steps, allow_zero=True)
        check_positive("capacity_gamma", self.capacity_gamma, allow_zero=True)
        if self.capacity_max > 0 and self.free_bits > 0:
            raise ConfigError(
                f"capacity_max={self.capacity_max} and free_bits={self.free_bits} are two different KL "
                "objectives; set one of them to 0."
            )
        if self.capacity_max > 0 and (self.beta != 1.0 or self.kl_warmup_steps > 0):
            raise ConfigError(
                f"capacity_max={self.capacity_max} replaces the KL weight by capacity_gamma |KL - C| (Burgess et "
                f"al. 2018), so beta={self.beta} and kl_warmup_steps={self.kl_warmup_steps} would have no effect; "
                "leave them at 1 and 0, or set capacity_max=0."
            )


@dataclass
class VAEOutput:
    latent: GaussianLatent
    z: torch.Tensor          # (L, N, D) reparameterized samples
    recon: DecoderOutput     # loc (L*N, *input_shape)


class VAE(Autoencoder):
    config_class = VAEConfig
    is_generative = True
    has_likelihood = True

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        cond = config.num_classes if self.is_conditional else 0
        self.encoder = Encoder(config, 2 * config.latent_dim, cond_dim=cond)
        self.head = OutputHead(config.likelihood, config.decoder_variance, config.decoder_std)
        self.decoder = Decoder(config, self.head.channels_mult, cond_dim=cond)

    def condition(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The vector the encoder and decoder are conditioned on: none for the unconditional VAE; for a
        conditional one the one-hot label (N, num_classes), or a float condition vector passed as is."""
        if not self.is_conditional:
            return None
        c = self.config.num_classes
        if y is None:
            raise DataError(f"{type(self).__name__} is conditional: it needs labels y (N,) or condition vectors (N, {c}).")
        if y.dim() == 2 and y.shape[1] != c:
            raise DataError(f"Condition vectors have {y.shape[1]} columns; this model expects {c} (num_classes).")
        if y.dim() == 1 and not y.is_floating_point() and y.numel() and (int(y.min()) < 0 or int(y.max()) >= c):
            raise DataError(f"Labels must lie in 0..{c - 1}; got values from {int(y.min())} to {int(y.max())}.")
        return one_hot(y, c, dtype=next(self.parameters()).dtype)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> GaussianLatent:
        if self.config.missing_values:
            x = losses.zero_missing(x)
        mean, logvar = self.encoder(x, self.condition(y)).chunk(2, dim=1)
        return GaussianLatent(mean, logvar)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> DecoderOutput:
        return self.head(self.decoder(z, self.condition(y)))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> VAEOutput:
        latent = self.encode(x, y)
        z = losses.reparameterize(latent.mean, latent.logvar, self.config.n_samples, generator)
        return VAEOutput(latent, z, self.decode_samples(z, y))

    def decode_samples(self, z: torch.Tensor, y: torch.Tensor | None = None) -> DecoderOutput:
        """Decode (L, N, D) samples in one pass; the output's rows are ordered l * N + n."""
        L, n = z.shape[0], z.shape[1]
        y_rep = None if y is None else y.repeat(L, *([1] * (y.dim() - 1)))
        return self.decode(z.reshape(L * n, -1), y_rep)

    def kl_weight(self) -> torch.Tensor | float:
        """beta, scaled by the linear warm-up factor min(1, step / kl_warmup_steps) while training."""
        c = self.config
        if c.kl_warmup_steps <= 0 or not self.training:
            return c.beta
        return c.beta * torch.clamp(self.train_step.float() / c.kl_warmup_steps, max=1.0)

    def capacity(self) -> torch.Tensor | float:
        """C = capacity_max * min(1, step / capacity_steps) while training; capacity_max in eval mode."""
        c = self.config
        if c.capacity_steps <= 0 or not self.training:
            return c.capacity_max
        return c.capacity_max * torch.clamp(self.train_step.float() / c.capacity_steps, max=1.0)

    def log_likelihood_terms(self, x: torch.Tensor, out: VAEOutput) -> torch.Tensor:
        """log p(x | z_l) for every sample, (L, N) (of the observed values of x with ``missing_values``)."""
        return losses.repeated_log_prob(out.recon, x, out.z.shape[0], self.config.missing_values)

    def loss(self, x: torch.Tensor, out: VAEOutput, y: torch.Tensor | None = None) -> LossOutput:
        c = self.config
        rec = self.log_likelihood_terms(x, out).mean(0)                     # (N,)
        kl_dims = losses.gaussian_kl_per_dim(out.latent.mean, out.latent.logvar)  # (N, D)
        kl = kl_dims.sum(1)                                                # (N,)
        neg_rec = -rec.mean()
        kl_mean = kl.mean()
        if c.capacity_max > 0:
            reg = c.capacity_gamma * (kl_mean - self.capacity()).abs()
        elif c.free_bits > 0:
            reg = self.kl_weight() * losses.free_bits_kl(kl_dims, c.free_bits)
        else:
            reg = self.kl_weight() * kl_mean
        total = neg_rec + reg
        elbo = (rec - kl).mean()
        return LossOutput(
            total,
            {"reconstruction": neg_rec.detach(), "kl": kl_mean.detach(), "elbo": elbo.detach()},
        )

    def elbo(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The per-example evidence lower bound with L samples, (N,)."""
        return self.elbo_terms(x, y)["elbo"]

    def elbo_terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """ELBO = E_q log p(x|z) - KL(q(z|x) || p(z)) per example, with its two terms ("log_px_given_z"
        and "kl"); each (N,) in nats.

        The expectation uses the config's L samples; the KL is analytic (Kingma & Welling, eq. 10).
        """
        out = self.forward(x, y, generator)
        rec = self.log_likelihood_terms(x, out).mean(0)
        kl = losses.gaussian_kl(out.latent.mean, out.latent.logvar)
        return {"elbo": rec - kl, "log_px_given_z": rec, "kl": kl}

    def log_importance_weights(
        self, x: torch.Tensor, k: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """log w_i = log p(x, z_i) - log q(z_i | x) for k samples z_i ~ q(z|x); (N, ...) -> (k, N).

        E_q[w] = p(x): the evaluator averages w in log space (Burda et al. 2015, eq. 8).
        """
        latent = self.encode(x, y)
        z = losses.reparameterize(latent.mean, latent.logvar, k, generator)          # (k, N, D)
        log_q = losses.log_normal(z, latent.mean, latent.logvar)                      # (k, N)
        log_px = losses.repeated_log_prob(self.decode_samples(z, y), x, k, self.config.missing_values)  # (k, N)
        return log_px + losses.log_standard_normal(z) - log_q

    def log_joint(self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None = None,
                  observed: torch.Tensor | None = None, decoded: DecoderOutput | None = None) -> torch.Tensor:
        """log p(x | z) + log p(z) per example, x (N, ...) and z (N, D) -> (N,); with ``observed`` (a
        mask of x's shape) log p(x_observed | z) + log p(z). With ``encode``'s q(z|x), what the
        imputation methods of ``aekit.evaluate.impute`` need. ``decoded``: ``decode(z, y)``, where the
        caller has it already."""
        return losses.log_joint(self.decode(z, y) if decoded is None else decoded, x, z, observed)

    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means at z ~ N(0, I), (n, *input_shape)."""
        p = next(self.parameters())
        z = torch.randn(n, self.config.latent_dim, generator=generator, dtype=p.dtype, device=p.device)
        return self.decode(z, y).mean()

