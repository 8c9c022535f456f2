"""The importance weighted autoencoder (Burda, Grosse & Salakhutdinov 2015, arXiv 1509.00519).

With k samples h_i ~ q(h|x) and weights w_i = p(x, h_i) / q(h_i|x), the IWAE objective is

    L_k(x) = E[ log (1/k) sum_i w_i ]   (their eq. 8),

a lower bound on log p(x) that tightens as k grows; L_1 is the ELBO. ``objective='vae'`` trains
on (1/k) sum_i log w_i instead: the VAE column of their Table 1 (the same k samples, the ELBO).

One or two stochastic layers, as in the paper:
  1 layer:  q(h|x): 784-200-200-(50 mean, 50 log-variance); p(x|h): 50-200-200-784, tanh.
  2 layers: q(h1|x) 784-200-200-100, q(h2|h1) 100-100-100-50; p(h1|h2) 50-100-100-100,
            p(x|h1) 100-200-200-784; p(h2) = N(0, I); every conditional a diagonal Gaussian.
Weights use Glorot initialization as in the paper (``init='glorot'``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import losses
from ..config import ModelConfig, check_choice, check_positive
from ..errors import ConfigError
from ..nn import LIKELIHOODS, Decoder, DecoderOutput, Encoder, OutputHead, mlp
from .base import Autoencoder, GaussianLatent, LossOutput


@dataclass(frozen=True)
class IWAEConfig(ModelConfig):
    """``latent_dim`` is the top stochastic layer (50); ``hidden_dims`` the deterministic layers between
    x and the first stochastic layer; with two layers, ``intermediate_dim`` is h1 (100) and
    ``intermediate_hidden_dims`` the layers between h1 and h2."""

    latent_dim: int = 50
    hidden_dims: tuple[int, ...] = (200, 200)
    activation: str = "tanh"
    likelihood: str = "bernoulli"
    decoder_variance: str = "fixed"
    decoder_std: float = 1.0
    k: int = 5                         # importance samples per input in the training objective
    objective: str = "iwae"            # "iwae": log mean_i w_i; "vae": mean_i log w_i
    n_stochastic_layers: int = 1
    # NaN in the data marks a missing value: the encoder sees 0 there and the bound counts the observed
    # values only (MIWAE, Mattei & Frellsen 2019)
    missing_values: bool = False
    intermediate_dim: int = 100
    intermediate_hidden_dims: tuple[int, ...] = (100, 100)
    init: str = "glorot"               # "glorot" (the paper) or "default" (PyTorch's)
    output_bias: str = "data"          # the decoder starts at the data mean, as in the paper's code

    def validate(self) -> None:
        super().validate()
        check_choice("likelihood", self.likelihood, LIKELIHOODS)
        check_choice("decoder_variance", self.decoder_variance, ("fixed", "learned"))
        check_positive("decoder_std", self.decoder_std)
        check_positive("k", self.k)
        check_choice("objective", self.objective, ("iwae", "vae"))
        check_choice("init", self.init, ("glorot", "default"))
        if self.n_stochastic_layers not in (1, 2):
            raise ConfigError(f"n_stochastic_layers={self.n_stochastic_layers!r} must be 1 or 2.")
        check_positive("intermediate_dim", self.intermediate_dim)
        if any(h <= 0 for h in self.intermediate_hidden_dims):
            raise ConfigError(f"intermediate_hidden_dims={self.intermediate_hidden_dims!r} must be positive sizes.")


@dataclass
class IWAEOutput:
    log_w: torch.Tensor      # (k, N) log p(x, h) - log q(h|x)
    log_px: torch.Tensor     # (k, N) log p(x | h1)
    latent: GaussianLatent   # q(h1 | x), (N, d1)


def _split(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # (..., 2d) -> mean, log-variance (..., d)
    mean, logvar = params.chunk(2, dim=-1)
    return mean, logvar


class IWAE(Autoencoder):
    config_class = IWAEConfig
    is_generative = True
    has_likelihood = True

    def __init__(self, config: IWAEConfig):
        super().__init__(config)
        c = config
        two = c.n_stochastic_layers == 2
        d1 = c.intermediate_dim if two else c.latent_dim
        self.q1 = Encoder(c, 2 * d1)                                  # q(h1 | x)
        self.head = OutputHead(c.likelihood, c.decoder_variance, c.decoder_std)
        self.px = Decoder(c.replace(latent_dim=d1), self.head.channels_mult)  # p(x | h1)
        self.q2: nn.Module | None = None
        self.p1: nn.Module | None = None
        if two:
            self.q2 = mlp(d1, c.intermediate_hidden_dims, 2 * c.latent_dim, c.activation)              # q(h2 | h1)
            self.p1 = mlp(c.latent_dim, tuple(reversed(c.intermediate_hidden_dims)), 2 * d1, c.activation)  # p(h1 | h2)
        if c.init == "glorot":
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)

    # -- the contract ---------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> GaussianLatent:
        """q of the top layer; with two layers, q(h2 | h1 = E[h1|x]) (a deterministic mean-field pass)."""
        mean, logvar = self._q1(x)
        if self.q2 is not None:
            mean, logvar = _split(self.q2(mean))
        return GaussianLatent(mean, logvar)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> DecoderOutput:
        """p(x | h1) at h1 = z (one layer) or at h1 = E[h1 | h2 = z] (two layers)."""
        if self.p1 is not None:
            z = _split(self.p1(z))[0]
        return self.head(self.px(z))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> IWAEOutput:
        return self._weights(x, self.config.k, generator)

    def loss(self, x: torch.Tensor, out: IWAEOutput, y: torch.Tensor | None = None) -> LossOutput:
        bound = losses.log_mean_exp(out.log_w, dim=0).mean()     # L_k, averaged over the batch
        elbo = out.log_w.mean()                                  # L_1 estimated with k samples
        total = -(bound if self.config.objective == "iwae" else elbo)
        rec = out.log_px.mean()
        return LossOutput(total, {
            "reconstruction": -rec.detach(),
            "kl": (rec - elbo).detach(),       # E[log q - log p(h)], Monte Carlo
            "elbo": elbo.detach(),
            "iwae_bound": bound.detach(),
        })

    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means of ancestral samples h2 ~ p(h2), h1 ~ p(h1|h2); (n, *input_shape)."""
        p = next(self.parameters())
        h = torch.randn(n, self.config.latent_dim, generator=generator, dtype=p.dtype, device=p.device)
        if self.p1 is not None:
            mean, logvar = _split(self.p1(h))
            h = losses.reparameterize(mean, logvar, 1, generator)[0]
        return self.head(self.px(h)).mean()

    def layer_posterior_means(
        self, x: torch.Tensor, samples: int = 100, generator: torch.Generator | None = None
    ) -> list[torch.Tensor]:
        """E_q[h | x] of every stochastic layer, bottom first, (N, d) each: q(h1|x)'s mean, and with two
        layers E_{h1 ~ q(h1|x)}[E[h2 | h1]] from ``samples`` draws of h1 (q(h2|x) is a mixture)."""
        m1, lv1 = self._q1(x)
        if self.q2 is None:
            return [m1]
        h1 = losses.reparameterize(m1, lv1, samples, generator)      # (S, N, d1)
        return [m1, _split(self.q2(h1))[0].mean(0)]

    # -- bounds ---------------------------------------------------------------------------------
    def _q1(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(h1 | x)'s mean and log-variance (N, d1); with ``missing_values`` x's NaN are seen as 0."""
        return _split(self.q1(losses.zero_missing(x) if self.config.missing_values else x))

    def _weights(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> IWAEOutput:
        m1, lv1 = self._q1(x)                                         # (N, d1)
        h1 = losses.reparameterize(m1, lv1, k, generator)             # (k, N, d1)
        log_q = losses.log_normal(h1, m1, lv1)                        # (k, N)
        if self.q2 is None:
            log_p = losses.log_standard_normal(h1)
        else:
            m2, lv2 = _split(self.q2(h1))                             # (k, N, d2)
            h2 = losses.reparameterize(m2, lv2, 1, generator)[0]      # (k, N, d2)
            log_q = log_q + losses.log_normal(h2, m2, lv2)
            pm, plv = _split(self.p1(h2))                             # p(h1 | h2): (k, N, d1)
            log_p = losses.log_standard_normal(h2) + losses.log_normal(h1, pm, plv)
        n = x.shape[0]
        log_px = losses.repeated_log_prob(self.head(self.px(h1.reshape(k * n, -1))), x, k, self.config.missing_values)
        return IWAEOutput(log_px + log_p - log_q, log_px, GaussianLatent(m1, lv1))

    def log_importance_weights(
        self, x: torch.Tensor, k: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """log w_i = log p(x, h_i) - log q(h_i | x) over all stochastic layers, (k, N)."""
        return self._weights(x, k, generator).log_w

    def elbo_terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """ELBO, E_q log p(x|h1) ("log_px_given_z") and KL per example, (N,) each, from one sample per
        input; with one stochastic layer the KL is analytic."""
        out = self._weights(x, 1, generator)
        rec = out.log_px[0]
        if self.q2 is None:
            kl = losses.gaussian_kl(out.latent.mean, out.latent.logvar)
        else:
            kl = rec - out.log_w[0]
        return {"elbo": rec - kl, "log_px_given_z": rec, "kl": kl}

    def elbo(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.elbo_terms(x, y)["elbo"]

    def log_joint(self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None = None,
                  observed: torch.Tensor | None = None, decoded: DecoderOutput | None = None) -> torch.Tensor:
        """log p(x | h1) + log p(h1) per example at h1 = z, (N,) (with ``observed``, of the observed
        values of x only); one stochastic layer only, where ``encode`` is q(h1 | x) (with two, the
        joint of x and the top layer has no closed form). ``decoded``: ``decode(z)``, where the caller
        has it already."""
        if self.q2 is not None:
            raise ConfigError("Imputation by importance sampling or Metropolis-within-Gibbs needs log p(x, z) in "
                              "closed form, which an IWAE with two stochastic layers lacks; use method='pseudo_gibbs' "
                              "or 'iterate'.")
        return losses.log_joint(self.head(self.px(z)) if decoded is None else decoded, x, z, observed)
