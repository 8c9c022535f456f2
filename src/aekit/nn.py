"""Building blocks shared by every model: MLPs, a small conv encoder/decoder, and the decoder's
output distribution (Bernoulli or Gaussian) with its log-likelihood.

The conv blocks are the stride-2 4x4 design of DCGAN-style autoencoders (and the Parametric UMAP
paper's Conv64-s2 -> Conv128-s2 encoder): each layer halves H and W; the decoder mirrors it with
transposed convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import losses
from .config import ModelConfig
from .errors import ConfigError

LIKELIHOODS = ("bernoulli", "gaussian", "continuous_bernoulli", "discretized_logistic")
# Likelihoods whose log_prob is a probability of a discrete value (binary pixels, 256 levels), not a density.
DISCRETE_LIKELIHOODS = ("bernoulli", "discretized_logistic")
UNIT_INTERVAL_LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "discretized_logistic")   # data in [0, 1]
# Likelihoods with a scale parameter (fixed, or learned as a second output head).
SCALED_LIKELIHOODS = ("gaussian", "discretized_logistic")


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's parameters (CPU for a model without any): where its inputs must go."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def activation(name: str) -> nn.Module:
    table = {
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "softplus": nn.Softplus,
        "sigmoid": nn.Sigmoid,
        "elu": nn.ELU,
        "gelu": nn.GELU,
        "leaky_relu": nn.LeakyReLU,
        "identity": nn.Identity,
    }
    if name not in table:
        raise ConfigError(f"activation={name!r} is not one of {', '.join(table)}.")
    return table[name]()


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int | None, act: str) -> nn.Sequential:
    """Linear -> act for each hidden size, then an optional final Linear with no activation."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), activation(act)]
        d = h
    if out_dim is not None:
        layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def trunk_out_dim(in_dim: int, hidden: tuple[int, ...]) -> int:
    return hidden[-1] if hidden else in_dim


class Encoder(nn.Module):
    """x (N, *input_shape) [+ condition (N, C)] -> features (N, out_dim).

    MLP: flatten, hidden layers, a final Linear. Conv: stride-2 convs, flatten, hidden layers, Linear.
    A condition vector (one-hot label) is concatenated to the flattened features before the MLP.
    """

    def __init__(self, config: ModelConfig, out_dim: int, cond_dim: int = 0):
        super().__init__()
        self.conv: nn.Module | None = None
        flat = config.input_dim
        if config.architecture == "conv":
            c, h, w = config.input_shape
            layers: list[nn.Module] = []
            for ch in config.conv_channels:
                layers += [nn.Conv2d(c, ch, 4, stride=2, padding=1), activation(config.activation)]
                c, h, w = ch, h // 2, w // 2
            self.conv = nn.Sequential(*layers)
            flat = c * h * w
        self.mlp = mlp(flat + cond_dim, config.hidden_dims, out_dim, config.activation)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv(x) if self.conv is not None else x
        h = h.reshape(h.shape[0], -1)
        if cond is not None:
            h = torch.cat([h, cond.to(h.dtype)], dim=1)
        return self.mlp(h)


class Decoder(nn.Module):
    """z (N, latent) [+ condition] -> (N, channels_mult * prod(input_shape)) reshaped to the input.

    ``channels_mult`` = 2 lets a Gaussian head emit a mean and a log-variance per pixel.
    """

    def __init__(self, config: ModelConfig, channels_mult: int = 1, cond_dim: int = 0):
        super().__init__()
        self.input_shape = tuple(config.input_shape)
        self.mult = channels_mult
        hidden = tuple(reversed(config.hidden_dims))
        self.deconv: nn.Module | None = None
        if config.architecture == "conv":
            c, h, w = config.input_shape
            chans = tuple(config.conv_channels)
            factor = 2 ** len(chans)
            self.seed_shape = (chans[-1], h // factor, w // factor)
            seed = chans[-1] * (h // factor) * (w // factor)
            self.mlp = nn.Sequential(
                mlp(config.latent_dim + cond_dim, hidden, seed, config.activation), activation(config.activation)
            )
            layers: list[nn.Module] = []
            outs = list(reversed(chans[:-1])) + [c * channels_mult]
            cin = chans[-1]
            for i, cout in enumerate(outs):
                layers.append(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
                if i < len(outs) - 1:
                    layers.append(activation(config.activation))
                cin = cout
            self.deconv = nn.Sequential(*layers)
        else:
            self.mlp = mlp(config.latent_dim + cond_dim, hidden, config.input_dim * channels_mult, config.activation)

    @torch.no_grad()
    def set_output_bias(self, raw: torch.Tensor) -> None:
        """Set the output layer's bias so that a zero pre-activation gives ``raw`` (shape of one input)
        in the first head (the mean); a conv decoder's bias is per channel, so it gets each channel's
        average of ``raw``."""
        last = (self.deconv if self.deconv is not None else self.mlp)[-1]
        if self.deconv is not None:
            raw = raw.reshape(self.input_shape[0], -1).mean(1)
        last.bias[: raw.numel()].copy_(raw.reshape(-1).to(last.bias.dtype))

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is not None:
            z = torch.cat([z, cond.to(z.dtype)], dim=1)
        h = self.mlp(z)
        if self.deconv is not None:
            h = self.deconv(h.reshape(h.shape[0], *self.seed_shape))
            # (N, mult*C, H, W) -> (N, mult, C, H, W) so the split below is by head, not by channel.
            return h.reshape(h.shape[0], self.mult, *self.input_shape) if self.mult > 1 else h
        return h.reshape(h.shape[0], self.mult, *self.input_shape) if self.mult > 1 else h.reshape(
            h.shape[0], *self.input_shape
        )


@dataclass
class DecoderOutput:
    """The decoder's output distribution p(x | z): Bernoulli logits, or a Gaussian mean and log-variance.

    ``loc`` has shape (N, *input_shape): logits for Bernoulli and continuous Bernoulli, the mean for
    Gaussian, the location for the discretized logistic. ``logvar`` is a tensor of the same shape
    (learned) or a float (fixed): the log-variance for Gaussian, 2 log s (s the logistic scale) for
    the discretized logistic over 256 levels of [0, 1].
    """

    loc: torch.Tensor
    likelihood: str
    logvar: torch.Tensor | float = 0.0

    @property
    def is_discrete(self) -> bool:
        """True when ``log_prob`` is the log-probability of a discrete value, False for a density."""
        return self.likelihood in DISCRETE_LIKELIHOODS

    def mean(self) -> torch.Tensor:
        if self.likelihood == "bernoulli":
            return torch.sigmoid(self.loc)
        if self.likelihood == "continuous_bernoulli":
            return losses.continuous_bernoulli_mean(self.loc)
        if self.likelihood == "discretized_logistic":
            return self.loc.clamp(0.0, 1.0)  # the location; the exact mean differs only by edge mass
        return self.loc

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x | z) summed over dimensions; x (N, *shape) -> (N,)."""
        if self.likelihood == "bernoulli":
            return losses.bernoulli_log_likelihood(self.loc, x)
        if self.likelihood == "continuous_bernoulli":
            return losses.continuous_bernoulli_log_likelihood(self.loc, x)
        if self.likelihood == "discretized_logistic":
            return losses.discretized_logistic_log_likelihood(x, self.loc, _half(self.logvar))
        return losses.gaussian_log_likelihood(x, self.loc, self.logvar)

    def log_prob_per_value(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x_d | z) of every value, (N, *shape) -> (N, *shape): the distribution factorizes over
        values, so each is scored as a one-value item (the same functions as ``log_prob``)."""
        n = x.numel()
        logvar = self.logvar.reshape(n, 1) if isinstance(self.logvar, torch.Tensor) else self.logvar
        one = DecoderOutput(self.loc.reshape(n, 1), self.likelihood, logvar)
        return one.log_prob(x.reshape(n, 1)).reshape(x.shape)

    def masked_log_prob(self, x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """log p(x_observed | z): the sum over the values where ``observed`` is True, (N,). Values
        where it is False may hold anything (NaN included)."""
        safe = torch.where(observed, x, self.mean().detach().to(x.dtype))
        return torch.where(observed, self.log_prob_per_value(safe), 0.0).reshape(x.shape[0], -1).sum(1)

    def repeated_log_prob(self, x: torch.Tensor, L: int) -> torch.Tensor:
        """log p(x_n | z_ln) of an output over L * N rows (ordered l * N + n) for x (N, *shape) -> (L, N)."""
        n = x.shape[0]
        if self.likelihood == "bernoulli" and L > 1:  # the importance-sampling hot path: no L copies of x
            return losses.bernoulli_log_likelihood_repeated(self.loc.reshape(L, n, -1), x)
        x_rep = x.unsqueeze(0).expand(L, *x.shape).reshape(L * n, *x.shape[1:])
        return self.log_prob(x_rep).reshape(L, n)

    def where(self, rows: torch.Tensor, other: "DecoderOutput") -> "DecoderOutput":
        """This output on the rows where ``rows`` (N,) is True, ``other`` (of the same likelihood) elsewhere."""
        pick = rows.reshape(-1, *([1] * (self.loc.dim() - 1)))
        logvar = self.logvar if not isinstance(self.logvar, torch.Tensor) else torch.where(pick, self.logvar, other.logvar)
        return DecoderOutput(torch.where(pick, self.loc, other.loc), self.likelihood, logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.likelihood == "bernoulli":
            return torch.bernoulli(torch.sigmoid(self.loc), generator=generator)
        if self.likelihood == "continuous_bernoulli":
            return losses.continuous_bernoulli_sample(self.loc, generator)
        if self.likelihood == "discretized_logistic":
            return losses.discretized_logistic_sample(self.loc, _half(self.logvar), generator=generator)
        std = torch.exp(0.5 * torch.as_tensor(self.logvar, dtype=self.loc.dtype))
        noise = torch.randn(self.loc.shape, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + std * noise


class OutputHead(nn.Module):
    """Turns the decoder's raw output into a DecoderOutput for the configured likelihood.

    Gaussian with ``variance='learned'`` uses a decoder with two output heads (mean, log-variance);
    with ``variance='fixed'`` the log-variance is the constant log(std**2). The discretized logistic
    reads the same way with s (its scale) in place of the standard deviation.
    """

    def __init__(self, likelihood: str, variance: str = "fixed", std: float = 1.0):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ConfigError(f"likelihood={likelihood!r} is not one of {', '.join(LIKELIHOODS)}.")
        self.likelihood = likelihood
        self.learned = likelihood in SCALED_LIKELIHOODS and variance == "learned"
        self.fixed_logvar = float(2.0 * torch.log(torch.tensor(std)).item())

    @property
    def channels_mult(self) -> int:
        return 2 if self.learned else 1

    def raw_for_mean(self, mean: torch.Tensor) -> torch.Tensor:
        """The raw output whose distribution has ``mean`` (data in [0, 1] for the Bernoulli family):
        the logit for Bernoulli, the mean itself for the location families. The continuous Bernoulli's
        mean is not sigmoid(logit), so it gets the logit too, a close start rather than an exact one."""
        if self.likelihood in ("bernoulli", "continuous_bernoulli"):
            return torch.logit(mean.clamp(0.001, 0.999))
        return mean

    def forward(self, raw: torch.Tensor) -> DecoderOutput:
        if self.learned:
            # raw: (N, 2, *shape); clamp keeps exp(-logvar) finite early in training. The logistic's
            # floor is log s = -7 as in PixelCNN++, well below the 1/255 width of a level.
            low = -14.0 if self.likelihood == "discretized_logistic" else -10.0
            return DecoderOutput(raw[:, 0], self.likelihood, raw[:, 1].clamp(low, 10.0))
        return DecoderOutput(raw, self.likelihood, self.fixed_logvar)


def _half(logvar: torch.Tensor | float) -> torch.Tensor | float:
    # 2 log s -> log s for the discretized logistic's scale.
    return 0.5 * logvar
