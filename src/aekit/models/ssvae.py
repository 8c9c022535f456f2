"""The semi-supervised generative model M2 (Kingma, Rezende, Mohamed & Welling 2014, "Semi-supervised
Learning with Deep Generative Models", section 2.2 and eqs. 6-9).

Generative model p(y) p(z) p(x | y, z) with p(y) uniform over C classes and p(z) = N(0, I); inference
model q(y | x) (the classifier) and q(z | x, y) = N(mu(x, y), diag sigma^2(x, y)). Per row of a batch:

    labelled   -L(x, y) = -E_q(z|x,y)[log p(x|y,z)] + KL(q(z|x,y) || p(z)) - log p(y)          (eq. 6)
    unlabelled -U(x)    = sum_y q(y|x) (-L(x, y)) - H(q(y|x))                               (eq. 7)

and the classification term alpha * (-log q(y|x)) on labelled rows (eq. 9). A batch may mix both:
``y = -1`` marks an unlabelled row (the scikit-learn convention). The sum over y in U(x) is exact and
vectorized: every unlabelled row is evaluated once per class by expanding the batch to (C * N_u, ...)
in one pass, never by a Python loop over classes. With every label known no row is expanded
(supervised-only mode, the conditional VAE plus a classifier).

The weight alpha. The paper's objective (eq. 9) is J = sum_l L + sum_u U + alpha_p E_l[-log q(y|x)] with
alpha_p = 0.1 * N (N = all training rows; the authors' code multiplies each labelled row's log q(y|x)
by 0.1 * N / N_l). Divided by N, the per-row objective is

    mean over all rows of (-ELBO) + alpha * mean over labelled rows of (-log q(y|x)),   alpha = 0.1,

which is what ``loss`` computes on a batch: the batch mean of the per-row -L / -U plus ``alpha`` times
the mean of -log q(y|x) over the batch's labelled rows (zero when a batch has none). So ``alpha`` is the
paper's 0.1, and each labelled example's classification term weighs 0.1 * N / N_l times one example's
ELBO, exactly as in the paper. When labelled rows are oversampled to a share f of the rows
(aekit.semi.oversample_labelled, to have some in every batch), the classification term keeps its
weight, while the ELBO mean gives the labelled rows' L(x, y) a share f instead of N_l / N, and the
unlabelled rows' U(x) a share 1 - f: the classification term then weighs 1 / (1 - f) times more
against U(x) than in the paper.

``input_noise='gaussian'`` is for M1+M2 (aekit.semi): each input is (2, *input_shape), the mean and
log-variance of M1's posterior q(z1 | x); in training every pass draws a fresh z1 from it (as the
authors' code does per minibatch), otherwise the mean is used. Plain inputs (N, *input_shape) are
accepted too and used as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..config import ModelConfig, check_choice, check_positive
from ..errors import ConfigError, DataError
from ..nn import LIKELIHOODS, Decoder, DecoderOutput, Encoder, OutputHead, activation, mlp
from .base import Autoencoder, GaussianLatent, LossOutput, one_hot

INPUT_NOISE = ("none", "gaussian")


@dataclass(frozen=True)
class M2Config(ModelConfig):
    """M2 as in the paper: one softplus hidden layer of 500 units (300 for 100 labels), latent 50.

    ``classifier_hidden_dims``: hidden layers of q(y|x) (None: the same as ``hidden_dims``).
    ``alpha``: weight of the mean -log q(y|x) over labelled rows (the paper's 0.1; see the module doc).
    ``init_std``: None keeps PyTorch's default initialization; a number draws every weight from
    N(0, init_std^2) with zero biases and a zero log-variance layer for q(z|x,y), as the authors' code
    does with 1e-3 (its hidden biases are drawn too, which makes no difference at that scale).
    """

    latent_dim: int = 50
    hidden_dims: tuple[int, ...] = (500,)
    activation: str = "softplus"
    num_classes: int = 10
    likelihood: str = "bernoulli"
    decoder_variance: str = "fixed"   # Gaussian decoder: "fixed" (decoder_std) or "learned" per feature
    decoder_std: float = 1.0
    n_samples: int = 1                # Monte-Carlo samples of z per (row, class)
    alpha: float = 0.1
    classifier_hidden_dims: tuple[int, ...] | None = None
    input_noise: str = "none"         # "gaussian": inputs are (2, *input_shape) = posterior mean, log-variance
    init_std: float | None = None

    def validate(self) -> None:
        super().validate()
        if self.num_classes < 2:
            raise ConfigError(f"num_classes={self.num_classes!r}: M2 needs at least two classes.")
        check_choice("likelihood", self.likelihood, LIKELIHOODS)
        check_choice("decoder_variance", self.decoder_variance, ("fixed", "learned"))
        check_positive("decoder_std", self.decoder_std)
        check_positive("n_samples", self.n_samples)
        check_positive("alpha", self.alpha, allow_zero=True)
        check_choice("input_noise", self.input_noise, INPUT_NOISE)
        if self.init_std is not None:
            check_positive("init_std", self.init_std)
        if self.classifier_hidden_dims is not None and any(h <= 0 for h in self.classifier_hidden_dims):
            raise ConfigError(f"classifier_hidden_dims={self.classifier_hidden_dims!r} must be positive sizes.")


@dataclass
class M2Output:
    """Everything ``loss`` needs. Rows of the expanded batch: the N_l labelled rows with their own label,
    then the N_u unlabelled rows once per class, class-major (R = N_l + C * N_u)."""

    x: torch.Tensor            # (N, *input_shape) the inputs used (a posterior draw under input_noise)
    logits: torch.Tensor       # (N, C) of q(y|x)
    labelled: torch.Tensor     # (N_l,) indices of labelled rows
    unlabelled: torch.Tensor   # (N_u,) indices of unlabelled rows
    y_labelled: torch.Tensor   # (N_l,) their labels
    rows: torch.Tensor         # (R,) the row of x each expanded row comes from
    classes: torch.Tensor      # (R,) the class each expanded row is conditioned on
    latent: GaussianLatent     # q(z|x,y) for the R expanded rows, (R, D)
    z: torch.Tensor            # (L, R, D)
    recon: DecoderOutput       # loc (L*R, *input_shape)


class M2(Autoencoder):
    config_class = M2Config
    is_generative = True
    is_conditional = True
    uses_labels = True
    has_likelihood = True   # elbo (exact sum over y) and log_importance_weights (y and z drawn from q)

    def __init__(self, config: M2Config):
        super().__init__(config)
        c, k = config, config.num_classes
        clf_hidden = c.hidden_dims if c.classifier_hidden_dims is None else c.classifier_hidden_dims
        # q(y|x): an MLP (or conv trunk) to C logits.
        self.classifier = Encoder(c.replace(hidden_dims=tuple(clf_hidden)), k)
        # q(z|x,y): the first layer W [x; onehot(y)] = W_x x + W_y[:, y] is split so that W_x x is computed
        # once per row and only the class column is added per class: the C-fold expansion then costs
        # the layers after the first, not C passes over the input.
        first = c.hidden_dims[0] if c.hidden_dims else 2 * c.latent_dim
        self.encoder_x = Encoder(c.replace(hidden_dims=()), first)
        self.encoder_y = nn.Parameter(torch.empty(k, first))  # (C, H0): the class columns of W
        # nn.Linear's default range for the joint layer, whose fan-in is the input size plus C.
        bound = 1.0 / math.sqrt(c.input_dim + k)
        nn.init.uniform_(self.encoder_y, -bound, bound)
        if c.hidden_dims:
            self.encoder_trunk: nn.Module = nn.Sequential(
                activation(c.activation), mlp(first, tuple(c.hidden_dims[1:]), 2 * c.latent_dim, c.activation)
            )
        else:
            self.encoder_trunk = nn.Identity()
        self.head = OutputHead(c.likelihood, c.decoder_variance, c.decoder_std)
        self.decoder = Decoder(c, self.head.channels_mult, cond_dim=k)
        if c.init_std is not None:
            self._small_init(c.init_std)

    @torch.no_grad()
    def _small_init(self, std: float) -> None:
        """Weights N(0, std^2), biases 0, and q(z|x,y)'s log-variance outputs 0 (see M2Config.init_std)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.normal_(0.0, std)
                m.bias.zero_()
        self.encoder_y.normal_(0.0, std)
        d = self.config.latent_dim   # the layer giving (mean, logvar) = chunk(2): zero its log-variance half
        trunk = [m for m in self.encoder_trunk.modules() if isinstance(m, nn.Linear)]
        if trunk:
            trunk[-1].weight[d:].zero_()
        else:                        # no hidden layer: the split first layer W_x x + W_y[:, y] gives it
            [m for m in self.encoder_x.modules() if isinstance(m, nn.Linear)][-1].weight[d:].zero_()
            self.encoder_y[:, d:].zero_()

    # -- inputs and labels ------------------------------------------------------------------------
    def input_item_shapes(self) -> list[tuple[int, ...]]:
        shape = tuple(self.config.input_shape)
        return [shape, (2, *shape)] if self.config.input_noise == "gaussian" else [shape]

    def features(self, x: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """The modelled features (N, *input_shape): under input_noise='gaussian' a (N, 2, *input_shape)
        input is a posterior (mean, log-variance) and gives a draw (``sample``) or its mean."""
        shape = tuple(self.config.input_shape)
        if self.config.input_noise == "gaussian" and tuple(x.shape[1:]) == (2, *shape):
            mean, logvar = x[:, 0], x[:, 1]
            if not sample:
                return mean
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
            return mean + torch.exp(0.5 * logvar) * eps
        if tuple(x.shape[1:]) != shape:
            raise DataError(f"M2 got inputs of shape {tuple(x.shape[1:])}; expected {shape}.")
        return x

    def _labels(self, y: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
        """Integer labels (N,) with -1 for unlabelled rows; None means every row is unlabelled."""
        if y is None:
            return torch.full((n,), -1, dtype=torch.long, device=device)
        if y.dim() != 1 or y.shape[0] != n:
            raise DataError(f"M2 needs integer labels of shape ({n},) with -1 for unlabelled rows, got {tuple(y.shape)}.")
        return y.long()

    # -- the inference networks -------------------------------------------------------------------
    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of q(y|x), (N, C); x plain or a posterior (its mean is used)."""
        return self.classifier(self.features(x))

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """q(y|x), (N, C); rows sum to one."""
        return torch.softmax(self.class_logits(x), dim=1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """argmax_y q(y|x), (N,)."""
        return self.class_logits(x).argmax(1)

    def _posterior(self, hx: torch.Tensor, cond: torch.Tensor) -> GaussianLatent:
        """q(z|x,y) from the x-part of the first layer hx (R, H0) and the conditions (R, C)."""
        mean, logvar = self.encoder_trunk(hx + cond.to(hx.dtype) @ self.encoder_y).chunk(2, dim=1)
        return GaussianLatent(mean, logvar)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> GaussianLatent:
        """q(z|x,y) with y the given label, or argmax q(y|x) where y is None or -1; (N, D) each."""
        x = self.features(x)
        k = self.config.num_classes
        if y is not None and y.dim() == 2:   # a soft condition (N, C), used as given
            cond = y
        else:
            yy = self._labels(y, x.shape[0], x.device)
            yy = torch.where(yy >= 0, yy, self.classifier(x).argmax(1))
            cond = one_hot(yy, k, x.dtype)
        return self._posterior(self.encoder_x(x), cond)

    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The posterior mean of z given x and y (the predicted class where y is unknown), (N, D).

        It is the "style" that the class does not explain; q(y|x) itself is ``predict_proba``.
        """
        return self.encode(x, y).mean

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> DecoderOutput:
        """p(x|y,z) for labels y (N,) or conditions (N, C)."""
        if y is None:
            raise DataError("M2 decodes a given class: pass y (labels, or one-hot conditions).")
        return self.head(self.decoder(z, one_hot(y, self.config.num_classes, z.dtype)))

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder mean at E[z|x,y], with y predicted where unknown; (N, *input_shape)."""
        feats = self.features(x)
        yy = self._labels(y, feats.shape[0], feats.device) if (y is None or y.dim() == 1) else y.argmax(1)
        yy = torch.where(yy >= 0, yy, self.classifier(feats).argmax(1))
        return self.decode(self.encode(feats, yy).mean, yy).mean()

    # -- the objective ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> M2Output:
        c, k = self.config, self.config.num_classes
        x = self.features(x, sample=self.training, generator=generator)
        n = x.shape[0]
        yy = self._labels(y, n, x.device)
        labelled_mask = yy >= 0
        # Index sets (a host sync on GPU; it keeps labelled rows out of the C-fold expansion).
        lab = labelled_mask.nonzero().squeeze(1)       # (N_l,)
        unl = (~labelled_mask).nonzero().squeeze(1)    # (N_u,)
        y_lab = yy.index_select(0, lab)
        if bool((y_lab >= k).any()):
            raise DataError(f"M2 got a label {int(y_lab.max())}; expected labels in 0..{k - 1} or -1 for unlabelled.")
        n_u = unl.shape[0]
        rows = torch.cat([lab, unl.repeat(k)])                                                   # (R,)
        classes = torch.cat([y_lab, torch.arange(k, device=x.device).repeat_interleave(n_u)])   # (R,)
        logits = self.classifier(x)                                                              # (N, C)
        hx = self.encoder_x(x)                                                                   # (N, H0)
        latent = self._posterior(hx.index_select(0, rows), one_hot(classes, k, hx.dtype))        # (R, D)
        z = losses.reparameterize(latent.mean, latent.logvar, c.n_samples, generator)           # (L, R, D)
        L, r = z.shape[0], z.shape[1]
        recon = self.decode(z.reshape(L * r, -1), classes.repeat(L))
        return M2Output(x, logits, lab, unl, y_lab, rows, classes, latent, z, recon)

    def row_terms(self, out: M2Output) -> dict[str, torch.Tensor]:
        """Per-row pieces, each (N_l,) for the labelled rows then (N_u,) for the unlabelled ones
        (concatenated in that order): reconstruction log-likelihood, KL, ELBO, and for labelled rows
        the cross-entropy -log q(y|x)."""
        k = self.config.num_classes
        L, r = out.z.shape[0], out.z.shape[1]
        n_l, n_u = out.labelled.shape[0], out.unlabelled.shape[0]
        target = out.x.index_select(0, out.rows)                                    # (R, *shape)
        target = target.unsqueeze(0).expand(L, *target.shape).reshape(L * r, *target.shape[1:])
        rec = out.recon.log_prob(target).reshape(L, r).mean(0)                      # (R,)
        kl = losses.gaussian_kl(out.latent.mean, out.latent.logvar)                 # (R,)
        log_py = -math.log(k)                                                       # uniform p(y)
        log_q = F.log_softmax(out.logits, dim=1)                                    # (N, C)
        # Labelled rows: L(x, y) (eq. 6) and -log q(y|x).
        rec_l, kl_l = rec[:n_l], kl[:n_l]
        ce = -log_q.index_select(0, out.labelled).gather(1, out.y_labelled.unsqueeze(1)).squeeze(1)
        # Unlabelled rows: (C, N_u) -> (N_u, C), then the exact sum over y (eq. 7).
        log_q_u = log_q.index_select(0, out.unlabelled)                             # (N_u, C)
        q_u = log_q_u.exp()
        rec_u = (q_u * rec[n_l:].reshape(k, n_u).t()).sum(1)
        kl_u = (q_u * kl[n_l:].reshape(k, n_u).t()).sum(1)
        entropy = -(q_u * log_q_u).sum(1)
        rec_rows, kl_rows = torch.cat([rec_l, rec_u]), torch.cat([kl_l, kl_u])
        elbo = torch.cat([rec_l - kl_l + log_py, rec_u - kl_u + log_py + entropy])
        return {"reconstruction": rec_rows, "kl": kl_rows, "elbo": elbo, "cross_entropy": ce}

    def loss(self, x: torch.Tensor, out: M2Output, y: torch.Tensor | None = None) -> LossOutput:
        t = self.row_terms(out)
        n_l = out.labelled.shape[0]
        ce_mean = t["cross_entropy"].sum() / max(n_l, 1)
        total = -t["elbo"].mean() + self.config.alpha * ce_mean
        correct = (out.logits.index_select(0, out.labelled).argmax(1) == out.y_labelled).float().sum()
        return LossOutput(total, {
            "reconstruction": -t["reconstruction"].mean().detach(),
            "kl": t["kl"].mean().detach(),
            "elbo": t["elbo"].mean().detach(),
            "classification": ce_mean.detach(),
            "accuracy": (correct / max(n_l, 1)).detach(),   # over the batch's labelled rows
        })

    def elbo(self, x: torch.Tensor, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-row ELBO in nats, (N,): L(x, y) where y is known, U(x) where y is None or -1."""
        out = self.forward(x, y, generator)
        e = self.row_terms(out)["elbo"]
        order = torch.cat([out.labelled, out.unlabelled])
        return torch.empty_like(e).index_copy_(0, order, e)

    def log_importance_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None,
                               generator: torch.Generator | None = None) -> torch.Tensor:
        """log w = log p(x, y, z) - log q(y, z | x) for k draws, (k, N); E[w] = p(x) for unlabelled rows.

        Where y is unknown (None or -1) it is drawn from q(y|x) and z from q(z|x,y); where y is given,
        only z is drawn and E[w] = p(x, y). aekit.evaluate.likelihood averages w in log space
        (Burda et al. 2015). The mean of log w over draws is the ELBO (``elbo``) in expectation.
        """
        k_cls = self.config.num_classes
        feats = self.features(x)
        n = feats.shape[0]
        yy = self._labels(y, n, feats.device)
        log_q_y = F.log_softmax(self.classifier(feats), dim=1)                               # (N, C)
        drawn = torch.multinomial(log_q_y.exp(), k, replacement=True, generator=generator).t()  # (k, N)
        known = (yy >= 0).unsqueeze(0)
        ys = torch.where(known, yy.unsqueeze(0), drawn)                                      # (k, N)
        log_qy = torch.where(known, torch.zeros_like(log_q_y[:, :1].t()), log_q_y.gather(1, drawn.t()).t())
        hx = self.encoder_x(feats)                                                           # (N, H0)
        lat = self._posterior(hx.repeat(k, 1), one_hot(ys.reshape(-1), k_cls, hx.dtype))     # (k*N, D)
        z = losses.reparameterize(lat.mean, lat.logvar, 1, generator)[0]                     # (k*N, D)
        log_px = self.decode(z, ys.reshape(-1)).repeated_log_prob(feats, k).reshape(-1)    # (k*N,)
        log_w = (log_px + losses.log_standard_normal(z) - losses.log_normal(z, lat.mean, lat.logvar)
                 - math.log(k_cls))
        return log_w.reshape(k, n) - log_qy

    def sample(self, n: int, y: torch.Tensor | int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means at z ~ N(0, I) for class(es) y (an int or (n,) labels); y ~ p(y) when None."""
        p = next(self.parameters())
        k = self.config.num_classes
        if y is None:
            y = torch.randint(k, (n,), generator=generator, device=p.device)
        elif isinstance(y, int) or (isinstance(y, torch.Tensor) and y.dim() == 0):
            y = torch.full((n,), int(y), dtype=torch.long, device=p.device)
        if y.shape[0] != n:
            raise DataError(f"sample({n}) got {y.shape[0]} labels; expected one per sample.")
        z = torch.randn(n, self.config.latent_dim, generator=generator, dtype=p.dtype, device=p.device)
        return self.decode(z, y).mean()
