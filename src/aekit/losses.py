"""Shared mathematics of the autoencoder family, written once.

Pure functions on tensors. Log-likelihoods and KL terms return one value per example (shape (N,)),
summed over the data dimensions, so that every objective is "mean over the batch of a per-example
sum" as in Kingma & Welling 2013 (eq. 10) and the regularized autoencoders of Vincent, Rifai and Ng.
Each function is tested against a closed form or ``torch.distributions``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)


def _flat(t: torch.Tensor) -> torch.Tensor:
    # (N, *shape) -> (N, D): a view when t is contiguous.
    return t.reshape(t.shape[0], -1)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | logits) summed over dimensions, (N, *shape) -> (N,).

    Uses the numerically stable form -BCEWithLogits; x may be any value in [0, 1] (the usual
    cross-entropy reconstruction term for grey levels).
    """
    # x * l - softplus(l) equals -BCEWithLogits exactly and stays finite for large |l|; on the CPU it
    # runs about twice as fast as the log-sigmoid kernel behind binary_cross_entropy_with_logits.
    logits = _flat(logits)
    return (_flat(x) * logits - F.softplus(logits)).sum(1)


def bernoulli_log_likelihood_repeated(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x_n | logits_ln) for L decoder outputs per data point: logits (L, N, *shape) and x
    (N, *shape) -> (L, N), the same sum as ``bernoulli_log_likelihood`` on L stacked copies of x,
    without making those copies: x . l is one batched dot product, so the L*N*D logits are read
    twice (the dot and the softplus) instead of passing through four elementwise kernels."""
    L, n = logits.shape[:2]
    logits = logits.reshape(L, n, -1)
    return torch.einsum("lnd,nd->ln", logits, _flat(x).to(logits.dtype)) - F.softplus(logits).sum(-1)


def gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor | float) -> torch.Tensor:
    """log N(x; mean, exp(logvar)) summed over dimensions, (N, *shape) -> (N,)."""
    x, mean = _flat(x), _flat(mean)
    if isinstance(logvar, torch.Tensor):
        logvar = _flat(logvar)
        return -0.5 * (LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar)).sum(1)
    return -0.5 * ((x - mean).pow(2).sum(1) * math.exp(-logvar) + x.shape[1] * (LOG_2PI + logvar))


def squared_error(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """||x - x_hat||^2 per example, (N, *shape) -> (N,)."""
    return (_flat(x) - _flat(x_hat)).pow(2).sum(1)


def log_normal(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, diag(exp(logvar))) summed over the last dimension (..., D) -> (...)."""
    return -0.5 * (LOG_2PI + logvar + (z - mean).pow(2) * torch.exp(-logvar)).sum(-1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension (..., D) -> (...)."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


def zero_missing(x: torch.Tensor) -> torch.Tensor:
    """x with its missing values (NaN) set to 0: what an encoder sees of incomplete data (MIWAE)."""
    return torch.nan_to_num(x, nan=0.0)


def repeated_log_prob(decoded: Any, x: torch.Tensor, L: int, missing_values: bool = False) -> torch.Tensor:
    """log p(x_n | z_ln) of a decoder output over L * N rows (ordered l * N + n), (L, N); with
    ``missing_values`` the sum over x's observed (not NaN) values only."""
    if not missing_values:
        return decoded.repeated_log_prob(x, L)
    n = x.shape[0]
    x_rep = x.unsqueeze(0).expand(L, *x.shape).reshape(L * n, *x.shape[1:])
    return decoded.masked_log_prob(x_rep, ~torch.isnan(x_rep)).reshape(L, n)


def log_joint(decoded: Any, x: torch.Tensor, z: torch.Tensor, observed: torch.Tensor | None = None) -> torch.Tensor:
    """log p(x | z) + log N(z; 0, I) per example, (N,), for the decoder's output distribution
    ``decoded`` at z (N, D); with ``observed`` (a mask of x's shape), of the observed values only."""
    log_px = decoded.log_prob(x) if observed is None else decoded.masked_log_prob(x, observed)
    return log_px + log_standard_normal(z)


def gaussian_kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per latent dimension, (N, D) -> (N, D).

    Kingma & Welling 2013, appendix B: -1/2 (1 + log s^2 - m^2 - s^2).
    """
    return 0.5 * (mean.pow(2) + torch.exp(logvar) - 1.0 - logvar)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag exp(logvar)) || N(0, I)), (N, D) -> (N,)."""
    return gaussian_kl_per_dim(mean, logvar).sum(-1)


def gaussian_kl_between(
    mean_q: torch.Tensor, logvar_q: torch.Tensor, mean_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean_q, exp logvar_q) || N(mean_p, exp logvar_p)) for diagonal Gaussians, (..., D) -> (...)."""
    return 0.5 * (
        logvar_p - logvar_q + (torch.exp(logvar_q) + (mean_q - mean_p).pow(2)) * torch.exp(-logvar_p) - 1.0
    ).sum(-1)


def free_bits_kl(kl_per_dim: torch.Tensor, free_bits: float) -> torch.Tensor:
    """Free-bits KL (Kingma et al. 2016): sum_j max(lambda, E_batch KL_j); (N, D) -> scalar per example.

    Returns the per-example mean objective contribution (a scalar), since the clamp acts on the
    batch average of each dimension.
    """
    return torch.clamp(kl_per_dim.mean(0), min=free_bits).sum()


def reparameterize(
    mean: torch.Tensor, logvar: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I); (N, D) -> (n_samples, N, D)."""
    shape = (n_samples, *mean.shape)
    if generator is None:
        eps = torch.randn(shape, dtype=mean.dtype, device=mean.device)
    else:
        eps = torch.randn(shape, dtype=mean.dtype, device=mean.device, generator=generator)
    return mean + torch.exp(0.5 * logvar) * eps


def log_mean_exp(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/k) sum_i exp(a_i) along ``dim``, computed stably."""
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


# -- decoders for [0, 1] intensities --------------------------------------------------------------
# Below |eta| = _CB_TAYLOR the closed forms of the continuous Bernoulli are 0/0 (lambda = 1/2); their
# series in u = eta / 2 are used instead (truncation error < 1e-9 there).
_CB_TAYLOR = 0.1


def continuous_bernoulli_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(lambda) of the continuous Bernoulli (Loaiza-Ganem & Cunningham 2019, eq. 7), elementwise.

    With lambda = sigmoid(eta): C = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) = eta / tanh(eta / 2),
    even in eta. Near eta = 0 it uses log C = log 2 + u^2/3 - 7 u^4/90 + O(u^6), u = eta / 2.
    """
    a = logits.abs()
    small = a < _CB_TAYLOR
    safe = torch.where(small, torch.ones_like(a), a)  # keeps the unused branch (and its gradient) finite
    direct = torch.log(safe) - torch.log(torch.tanh(0.5 * safe))
    u2 = 0.25 * a * a
    return torch.where(small, math.log(2.0) + u2 / 3.0 - 7.0 * u2 * u2 / 90.0, direct)


def continuous_bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | eta) of the continuous Bernoulli on [0, 1], summed over dimensions, (N, *shape) -> (N,).

    p(x | lambda) = C(lambda) lambda^x (1 - lambda)^(1 - x): the Bernoulli cross-entropy plus log C,
    a proper density for x in [0, 1].
    """
    return bernoulli_log_likelihood(logits, x) + continuous_bernoulli_log_norm(_flat(logits)).sum(1)


def continuous_bernoulli_mean(logits: torch.Tensor) -> torch.Tensor:
    """E[x] = lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda)) = sigmoid(eta) / tanh(eta/2) - 1/eta.

    Elementwise; near eta = 0 the series 1/2 + eta/12 - eta^3/720.
    """
    small = logits.abs() < _CB_TAYLOR
    safe = torch.where(small, torch.ones_like(logits), logits)
    direct = torch.sigmoid(safe) / torch.tanh(0.5 * safe) - 1.0 / safe
    return torch.where(small, 0.5 + logits / 12.0 - logits.pow(3) / 720.0, direct)


def continuous_bernoulli_sample(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverse-CDF sample of the continuous Bernoulli, elementwise.

    For a = |eta|: F^-1(u) = log1p(u expm1(a)) / a = 1 + log1p((1 - u) expm1(-a)) / a (no overflow);
    a negative eta is the mirror image x -> 1 - x.
    """
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype, device=logits.device)
    a = logits.abs().clamp_min(1e-6)
    y = 1.0 + torch.log1p((1.0 - u) * torch.expm1(-a)) / a
    return torch.where(logits >= 0, y, 1.0 - y).clamp(0.0, 1.0)


def discretized_logistic_log_likelihood(
    x: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor | float, n_bins: int = 256
) -> torch.Tensor:
    """log P(x) of a logistic(loc, exp(log_scale)) discretized to ``n_bins`` levels k/(n_bins-1) of [0, 1].

    One mixture component of PixelCNN++ (Salimans et al. 2017): the bin of x is [x - h, x + h],
    h = 1 / (2 (n_bins - 1)); the first and last bins extend to -inf and +inf, so the levels sum to one.
    log(sigmoid(b) - sigmoid(a)) for b > a is written b + log(-expm1(a - b)) - softplus(a) - softplus(b),
    exact and finite for any scale. (N, *shape) -> (N,).
    """
    x, loc = _flat(x), _flat(loc)
    log_scale = _flat(log_scale) if isinstance(log_scale, torch.Tensor) else torch.tensor(log_scale, dtype=x.dtype)
    half = 0.5 / (n_bins - 1)
    inv_s = torch.exp(-log_scale)
    upper = (x + half - loc) * inv_s
    lower = (x - half - loc) * inv_s
    mid = upper + torch.log(-torch.expm1(lower - upper)) - F.softplus(upper) - F.softplus(lower)
    first = -F.softplus(-upper)  # log sigmoid(upper): the bin (-inf, h]
    last = -F.softplus(lower)    # log (1 - sigmoid(lower)): the bin [1 - h, inf)
    lp = torch.where(x < half, first, torch.where(x > 1.0 - half, last, mid))
    return lp.sum(1)


def discretized_logistic_sample(
    loc: torch.Tensor, log_scale: torch.Tensor | float, n_bins: int = 256, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A logistic sample rounded to the nearest of the ``n_bins`` levels of [0, 1], elementwise."""
    u = torch.rand(loc.shape, generator=generator, dtype=loc.dtype, device=loc.device).clamp(1e-6, 1.0 - 1e-6)
    s = torch.exp(torch.as_tensor(log_scale, dtype=loc.dtype, device=loc.device))
    v = loc + s * (torch.log(u) - torch.log1p(-u))
    return torch.round(v.clamp(0.0, 1.0) * (n_bins - 1)) / (n_bins - 1)


# -- regularized autoencoders: sparsity (Ng, CS294A notes) and contraction (Rifai et al. 2011) ----


def bernoulli_kl(rho: float, rho_hat: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """KL(Bernoulli(rho) || Bernoulli(rho_hat)) elementwise: rho log(rho/rho_hat) + (1-rho) log((1-rho)/(1-rho_hat)).

    ``rho_hat`` is clamped to [eps, 1 - eps] so a dead or saturated unit gives a large finite penalty.
    """
    rho_hat = rho_hat.clamp(eps, 1.0 - eps)
    kl = (1.0 - rho) * (math.log1p(-rho) - torch.log1p(-rho_hat))
    if rho > 0:
        kl = kl + rho * (math.log(rho) - torch.log(rho_hat))
    return kl


def sparsity_kl(h: torch.Tensor, rho: float) -> torch.Tensor:
    """Ng's sparsity penalty sum_j KL(rho || rho_hat_j), rho_hat_j = mean_n h_nj; h (N, H) in [0, 1] -> scalar."""
    return bernoulli_kl(rho, h.mean(0)).sum()


def l1_activation(h: torch.Tensor) -> torch.Tensor:
    """The L1 sparsity alternative sum_j |h_j| per example, (N, H) -> (N,)."""
    return h.abs().sum(1)


def jacobian_frobenius_sq_one_layer(act_grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """||J_h(x)||_F^2 for h = s(W x + b) with an elementwise s, per example, (N, H) -> (N,).

    J = diag(s'(a)) W, so ||J||_F^2 = sum_i s'(a_i)^2 sum_j W_ij^2. ``act_grad`` is s'(a) (N, H);
    ``weight`` is W (H, D).
    """
    return act_grad.pow(2) @ weight.pow(2).sum(1)


def contractive_sigmoid(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Rifai et al. 2011, eq. 5: sum_i (h_i (1 - h_i))^2 sum_j W_ij^2 for h = sigmoid(W x + b); (N, H) -> (N,)."""
    return jacobian_frobenius_sq_one_layer(h * (1.0 - h), weight)


def jacobian_frobenius_sq(fn, x: torch.Tensor, out_dim: int, create_graph: bool | None = None) -> torch.Tensor:
    """Exact ||d fn(x) / dx||_F^2 per example for any per-example map fn: (N, *in) -> (N, out_dim); -> (N,).

    Reverse mode without vmap: the batch is replicated out_dim times, (K*N, *in), and one backward
    pass of sum_k sum_n fn(x_kn)_k gives row k of every example's Jacobian in replica k (the
    replicas are distinct inputs, so their gradients do not mix). Cost: one forward and backward
    on K*N inputs. With ``create_graph`` (default: whenever grad mode is on) the result is
    differentiable with respect to fn's parameters, as the contractive penalty needs.
    """
    if create_graph is None:
        create_graph = torch.is_grad_enabled()
    n, k = x.shape[0], out_dim
    with torch.enable_grad():
        xr = x.detach().unsqueeze(0).expand(k, *x.shape).reshape(k * n, *x.shape[1:]).clone().requires_grad_(True)
        h = fn(xr).reshape(k, n, k)                             # (K replicas, N, K outputs)
        picked = torch.diagonal(h, dim1=0, dim2=2)              # (N, K): replica k's k-th output
        (g,) = torch.autograd.grad(picked.sum(), xr, create_graph=create_graph)
    sq = g.reshape(k, n, -1).pow(2).sum((0, 2))                 # (N,)
    return sq if create_graph else sq.detach()


# -- vector quantization (van den Oord, Vinyals & Kavukcuoglu 2017, eq. 3) -------------------------

def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook vector (squared Euclidean distance) for every row: z (R, D),
    codebook (K, D) -> (R,) long. ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2 as one matmul, in float32
    at least (bf16 distances would tie); ||z||^2 is the same for every code and is left out."""
    z32, e32 = z.float(), codebook.float()
    dist = e32.pow(2).sum(1).unsqueeze(0) - 2.0 * z32 @ e32.t()   # (R, K), up to the per-row ||z||^2
    return dist.argmin(1)


def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """z_q in the forward pass, with the gradient passed to z_e unchanged (the straight-through
    estimator of the paper's section 3.1): z_e + sg[z_q - z_e]."""
    return z_e + (z_q - z_e).detach()


def vq_codebook_and_commitment(z_e: torch.Tensor, z_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two quantization terms of eq. 3, per example (N,): the codebook term ||sg[z_e] - e||^2,
    whose gradient moves only the codes, and the commitment term ||z_e - sg[e]||^2, whose gradient
    moves only the encoder (it is weighted by beta). Both sum over every latent position and
    dimension, like the reconstruction log-likelihood they sit beside. Their values are equal."""
    codebook = _flat(z_q - z_e.detach()).pow(2).sum(1)
    commitment = _flat(z_e - z_q.detach()).pow(2).sum(1)
    return codebook, commitment


def code_perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of the code frequencies ``counts`` (K,): K when every code is used equally, 1 when
    one code takes every position. The usual measure of how much of a codebook is in use."""
    p = counts.float() / counts.sum().clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum())
