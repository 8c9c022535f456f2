"""The regularized deterministic autoencoders, as config fields of one model.

- Linear AE (Baldi & Hornik 1989): no nonlinearity, squared error; its global minimum is the
  projection onto the top-k principal subspace (weights span it, not necessarily orthonormally).
- Denoising AE (Vincent et al. 2008; 2010): the encoder sees x~ ~ q(x~|x) (masking, Gaussian or
  salt-and-pepper noise, ``aekit.corruption``); the loss compares the reconstruction of x~ with the
  clean x, averaged over L corrupted copies per input (the Monte-Carlo form of the DAE loss).
- Sparse AE (Ng, CS294A notes): + beta * sum_j KL(rho || rho_hat_j) on the batch-mean code
  activations, or the L1 alternative beta * sum_j |h_j|.
- Contractive AE (Rifai et al. 2011): + lambda * ||J_h(x)||_F^2; the closed form
  sum_i (h_i(1-h_i))^2 sum_j W_ij^2 for a one-layer sigmoid encoder, exact autograd otherwise.
- Stochastic contractive AE: + lambda * E_{x~ ~ q(x~|x)} ||h(x) - h(x~)||^2 (L copies), which
  tends to lambda * sigma^2 * ||J_h(x)||_F^2 for small Gaussian sigma.

The regularizers combine freely. ``tied_weights`` uses W' = W^T in the decoder (Vincent et al.
2010 and Rifai et al. 2011 tie them). The registry names (linear_ae, dae, sparse_ae, cae, scae)
are config classes that only change defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..config import ACTIVATIONS, check_choice, check_positive
from ..corruption import CORRUPTIONS, check_corruption, corrupt
from ..errors import ConfigError
from ..nn import DecoderOutput, Encoder, activation
from .ae import AE, AEConfig
from .base import LossOutput, PointLatent

SPARSITY = ("none", "kl", "l1")
JACOBIAN = ("auto", "exact")
# Activations whose derivative is a function of their output h, s'(a) = g(h): the one-layer closed form.
_GRAD_FROM_OUTPUT = {
    "sigmoid": lambda h: h * (1.0 - h),
    "tanh": lambda h: 1.0 - h * h,
    "identity": lambda h: torch.ones_like(h),
}


@dataclass(frozen=True)
class RegularizedAEConfig(AEConfig):
    """Every regularizer is off by default: this config alone is the plain AE with a code activation."""

    code_activation: str = "identity"     # applied to the encoder output h; 'sigmoid' in the papers
    tied_weights: bool = False            # decoder weights W' = W^T (MLP only)
    corruption: str = "none"              # q(x~|x): none | masking | gaussian | salt_pepper
    corruption_level: float = 0.0         # nu (fraction of inputs) or sigma (Gaussian)
    corruption_clip: bool = False         # clip Gaussian-corrupted inputs to [0, 1]
    n_copies: int = 1                     # L corrupted copies per input (DAE loss and SCAE expectation)
    sparsity: str = "none"                # none | kl (Ng) | l1
    sparsity_target: float = 0.05         # rho
    sparsity_weight: float = 3.0          # beta
    contractive_weight: float = 0.0       # lambda of ||J_h(x)||_F^2
    jacobian: str = "auto"                # auto: closed form for one-layer encoders; exact: always autograd
    stochastic_contractive_weight: float = 0.0   # lambda of E ||h(x) - h(x~)||^2
    stochastic_contractive_noise: str = "gaussian"
    stochastic_contractive_level: float = 0.1

    def validate(self) -> None:
        super().validate()
        check_choice("code_activation", self.code_activation, ACTIVATIONS)
        check_corruption(self.corruption, self.corruption_level, "corruption")
        check_positive("n_copies", self.n_copies)
        check_choice("sparsity", self.sparsity, SPARSITY)
        if not 0 < self.sparsity_target < 1:
            raise ConfigError(f"sparsity_target={self.sparsity_target!r} is a mean activation rho; expected a value in (0, 1).")
        check_positive("sparsity_weight", self.sparsity_weight, allow_zero=True)
        if self.sparsity == "kl" and self.code_activation != "sigmoid":
            raise ConfigError(
                f"sparsity='kl' compares mean activations in (0, 1) with rho, so it needs code_activation='sigmoid', "
                f"got {self.code_activation!r}."
            )
        check_positive("contractive_weight", self.contractive_weight, allow_zero=True)
        check_choice("jacobian", self.jacobian, JACOBIAN)
        check_positive("stochastic_contractive_weight", self.stochastic_contractive_weight, allow_zero=True)
        check_corruption(self.stochastic_contractive_noise, self.stochastic_contractive_level, "stochastic_contractive_noise")
        if self.stochastic_contractive_weight > 0 and (
            self.stochastic_contractive_noise == "none" or self.stochastic_contractive_level == 0
        ):
            raise ConfigError(
                "stochastic_contractive_weight > 0 needs a noise: stochastic_contractive_noise one of "
                f"{', '.join(CORRUPTIONS[1:])} with a positive stochastic_contractive_level."
            )
        if self.tied_weights and self.architecture != "mlp":
            raise ConfigError(f"tied_weights=True needs architecture='mlp', got {self.architecture!r}.")


@dataclass(frozen=True)
class LinearAEConfig(RegularizedAEConfig):
    """Baldi & Hornik's linear autoencoder: identity activations, squared error."""

    hidden_dims: tuple[int, ...] = ()
    activation: str = "identity"

    def validate(self) -> None:
        super().validate()
        for name in ("activation", "code_activation"):
            if getattr(self, name) != "identity":
                raise ConfigError(f"A linear autoencoder has no nonlinearity: {name}={getattr(self, name)!r}, expected 'identity'.")
        if self.likelihood != "gaussian":
            raise ConfigError(f"A linear autoencoder is trained on squared error: likelihood={self.likelihood!r}, expected 'gaussian'.")


@dataclass(frozen=True)
class DAEConfig(RegularizedAEConfig):
    """Vincent et al.: one sigmoid layer, tied weights, cross-entropy, 25% masking noise."""

    hidden_dims: tuple[int, ...] = ()
    latent_dim: int = 256
    likelihood: str = "bernoulli"
    code_activation: str = "sigmoid"
    tied_weights: bool = True
    corruption: str = "masking"
    corruption_level: float = 0.25


@dataclass(frozen=True)
class SparseAEConfig(RegularizedAEConfig):
    """Ng's sparse AE: one sigmoid layer, KL(rho || rho_hat) with rho = 0.05, beta = 3."""

    hidden_dims: tuple[int, ...] = ()
    latent_dim: int = 256
    likelihood: str = "bernoulli"
    code_activation: str = "sigmoid"
    sparsity: str = "kl"


@dataclass(frozen=True)
class CAEConfig(RegularizedAEConfig):
    """Rifai et al. 2011: one sigmoid layer, tied weights, cross-entropy, lambda ||J||_F^2."""

    hidden_dims: tuple[int, ...] = ()
    latent_dim: int = 256
    likelihood: str = "bernoulli"
    code_activation: str = "sigmoid"
    tied_weights: bool = True
    contractive_weight: float = 0.1


@dataclass(frozen=True)
class SCAEConfig(RegularizedAEConfig):
    """Stochastic CAE; weight 10 with sigma 0.1 matches the CAE's lambda = 0.1 as sigma -> 0."""

    hidden_dims: tuple[int, ...] = ()
    latent_dim: int = 256
    likelihood: str = "bernoulli"
    code_activation: str = "sigmoid"
    tied_weights: bool = True
    stochastic_contractive_weight: float = 10.0


class TiedDecoder(nn.Module):
    """x_hat = W_1^T s(... s(W_K^T z + c_K) ...) + c_1 with the encoder's own weights W_k.

    Only the biases c_k are parameters here; the encoder's Linear layers are kept in a plain list
    so their weights are not registered (and saved) twice.
    """

    def __init__(self, encoder: Encoder, act: str, input_shape: tuple[int, ...]):
        super().__init__()
        self._linears = [m for m in encoder.mlp if isinstance(m, nn.Linear)][::-1]  # last encoder layer first
        self.bias = nn.ParameterList([nn.Parameter(torch.zeros(m.in_features)) for m in self._linears])
        self.act = activation(act)
        self.input_shape = tuple(input_shape)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = z                                                    # (N, latent)
        for i, (lin, b) in enumerate(zip(self._linears, self.bias)):
            h = F.linear(h, lin.weight.t(), b)                   # (N, in_features of that encoder layer)
            if i < len(self._linears) - 1:
                h = self.act(h)
        return h.reshape(h.shape[0], *self.input_shape)


@dataclass
class RegularizedOutput:
    latent: PointLatent              # h of what the encoder saw: (L*N, H) for L corrupted copies, else (N, H)
    recon: DecoderOutput             # loc (L*N, *input_shape) or (N, *input_shape)
    n_copies: int                    # L (1 when the input was not corrupted)
    clean: PointLatent | None        # h(x) of the clean input, when corrupted and a penalty needs it


class RegularizedAE(AE):
    """AE + denoising / sparsity / contractive / stochastic-contractive terms chosen by the config."""

    config_class = RegularizedAEConfig

    def __init__(self, config: RegularizedAEConfig):
        super().__init__(config)
        self.code_act = activation(config.code_activation)
        if config.tied_weights:
            self.decoder = TiedDecoder(self.encoder, config.activation, config.input_shape)

    # -- contract ---------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> PointLatent:
        return PointLatent(self.code_act(self.encoder(x)))

    @property
    def corrupts(self) -> bool:
        return self.config.corruption != "none" and self.config.corruption_level > 0

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw of the training corruption q(x~|x), (N, *shape) -> (N, *shape)."""
        c = self.config
        return corrupt(x, c.corruption, c.corruption_level, generator, clip=c.corruption_clip)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> RegularizedOutput:
        """Encode L corrupted copies of x (when the config corrupts) and decode them.

        The corruption is drawn in training and evaluation mode alike, since the DAE criterion is
        defined on corrupted inputs (a validation loss measures denoising); ``embed`` and
        ``reconstruct`` never corrupt.
        """
        c = self.config
        if not self.corrupts:
            latent = self.encode(x)
            return RegularizedOutput(latent, self.decode(latent.z), 1, None)
        L = c.n_copies
        x_rep = x.repeat(L, *([1] * (x.dim() - 1))) if L > 1 else x   # (L*N, *shape), copy l = rows l*N..(l+1)*N
        latent = self.encode(self.corrupt(x_rep, generator))
        needs_clean = c.contractive_weight > 0 or c.stochastic_contractive_weight > 0
        return RegularizedOutput(latent, self.decode(latent.z), L, self.encode(x) if needs_clean else None)

    # -- penalties --------------------------------------------------------------------------------
    def _closed_form_jacobian(self) -> bool:
        c = self.config
        return (c.jacobian == "auto" and c.architecture == "mlp" and not c.hidden_dims
                and c.code_activation in _GRAD_FROM_OUTPUT)

    def jacobian_frobenius_sq(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """||J_h(x)||_F^2 per example, (N,): the closed form for a one-layer encoder, else exact autograd."""
        if self._closed_form_jacobian():
            h = self.encode(x).z if h is None else h
            weight = self.encoder.mlp[0].weight                      # (H, D)
            return losses.jacobian_frobenius_sq_one_layer(_GRAD_FROM_OUTPUT[self.config.code_activation](h), weight)
        return losses.jacobian_frobenius_sq(lambda v: self.encode(v).z, x, self.config.latent_dim)

    def stochastic_contraction(self, x: torch.Tensor, h: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(1/L) sum_l ||h(x) - h(x~_l)||^2 per example, x~_l ~ q(x~|x); h = h(x) (N, H) -> (N,)."""
        c = self.config
        L = c.n_copies
        x_rep = x.repeat(L, *([1] * (x.dim() - 1))) if L > 1 else x
        noisy = corrupt(x_rep, c.stochastic_contractive_noise, c.stochastic_contractive_level, generator)
        h_noisy = self.encode(noisy).z.reshape(L, x.shape[0], -1)   # (L, N, H)
        return (h_noisy - h.unsqueeze(0)).pow(2).sum(-1).mean(0)

    def loss(self, x: torch.Tensor, out: RegularizedOutput, y: torch.Tensor | None = None) -> LossOutput:
        c = self.config
        L = out.n_copies
        target = x.repeat(L, *([1] * (x.dim() - 1))) if L > 1 else x   # the clean x for every copy
        rec = self.reconstruction_loss(target, out.recon).mean()         # mean over L*N: the MC DAE loss
        terms = {"reconstruction": rec.detach(), "mse": (target - out.recon.mean()).pow(2).mean().detach()}
        total = rec
        h = out.latent.z
        if c.sparsity != "none":
            pen = losses.sparsity_kl(h, c.sparsity_target) if c.sparsity == "kl" else losses.l1_activation(h).mean()
            total = total + c.sparsity_weight * pen
            terms["sparsity"] = pen.detach()
            terms["mean_activation"] = h.mean().detach()
        clean = out.clean.z if out.clean is not None else (None if self.corrupts else h)  # h(x), (N, H)
        if c.contractive_weight > 0:
            jac = self.jacobian_frobenius_sq(x, clean).mean()
            total = total + c.contractive_weight * jac
            terms["contractive"] = jac.detach()
        if c.stochastic_contractive_weight > 0:
            sc = self.stochastic_contraction(x, clean if clean is not None else self.encode(x).z).mean()
            total = total + c.stochastic_contractive_weight * sc
            terms["stochastic_contractive"] = sc.detach()
        return LossOutput(total, terms)

    # -- reporting --------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluation_terms(self, x: torch.Tensor, y: torch.Tensor | None = None, *, batch_size: int = 1000,
                         max_jacobian_examples: int = 1000, seed: int = 0) -> dict[str, float]:
        """What matters for this model on x (N, *input_shape): code activation level (sparsity), the
        mean Jacobian norm ||J_h(x)||_F (contraction), and denoising PSNR/SSIM under its own corruption."""
        from ..evaluate.image import denoising_report

        c = self.config
        was_training = self.training
        self.eval()
        codes = torch.cat([self.encode(xb).z for xb in x.split(batch_size)])          # (N, H)
        out: dict[str, float] = {"mean_activation": float(codes.mean())}
        if c.code_activation == "sigmoid":
            out["fraction_active"] = float((codes > 0.5).float().mean())
        if c.sparsity == "kl":
            rho_hat = codes.mean(0)                                                 # (H,) over the whole set
            out["sparsity_kl"] = float(losses.bernoulli_kl(c.sparsity_target, rho_hat).sum())
        if c.sparsity == "l1":
            out["mean_l1"] = float(losses.l1_activation(codes).mean())
        xj = x[:max_jacobian_examples]
        jac = torch.cat([self.jacobian_frobenius_sq(xb, None) for xb in xj.split(max(1, 2 ** 16 // c.latent_dim))])
        out["jacobian_frobenius"] = float(jac.clamp_min(0).sqrt().mean())
        if self.corrupts:
            gen = torch.Generator(device=x.device).manual_seed(seed)
            noisy = torch.cat([self.corrupt(xb, gen) for xb in x.split(batch_size)])
            denoised = torch.cat([self.reconstruct(xb) for xb in noisy.split(batch_size)])
            lo, hi = float(x.min()), float(x.max())
            data_range = 1.0 if lo >= 0 and hi <= 1 else hi - lo
            out.update(denoising_report(noisy, denoised, x, data_range=data_range, prefix="denoise_"))
        if self.is_linear:
            out.update(self.pca_comparison(x))
        self.train(was_training)
        return out

    @property
    def is_linear(self) -> bool:
        c = self.config
        return c.architecture == "mlp" and c.activation == "identity" and c.code_activation == "identity"

    @torch.no_grad()
    def pca_comparison(self, x: torch.Tensor) -> dict[str, float]:
        """Baldi & Hornik 1989 on x: PCA's MSE at k = latent_dim (PCA fitted on x), our MSE over it, and the
        largest principal angle between the decoder's column space and PCA's top-k subspace."""
        k = self.config.latent_dim
        flat = x.reshape(x.shape[0], -1).double()                                   # (N, D)
        if k >= flat.shape[1]:
            return {}                                                               # nothing to compare: no compression
        mean = flat.mean(0)
        _, vecs = torch.linalg.eigh((flat - mean).T @ (flat - mean) / flat.shape[0])
        top = vecs[:, -k:]                                                          # (D, k)
        pca_mse = float((((flat - mean) @ top) @ top.T + mean - flat).pow(2).mean())
        p = next(self.parameters())
        # The decoder is affine: its columns are decode(e_i) - decode(0), (k, D).
        eye = torch.cat([torch.zeros(1, k), torch.eye(k)]).to(p)
        dec = self.decode(eye).loc.reshape(k + 1, -1).double()
        q1, _ = torch.linalg.qr((dec[1:] - dec[:1]).T)                               # (D, k) orthonormal
        cosines = torch.linalg.svdvals(q1.T @ top).clamp(-1.0, 1.0)
        mse = float((self.reconstruct(x).reshape(flat.shape).double() - flat).pow(2).mean())
        return {"pca_mse": pca_mse, "mse_over_pca": mse / pca_mse,
                "principal_angle_max_deg": float(torch.rad2deg(torch.arccos(cosines.min())))}
