"""Image quality: PSNR and SSIM (Wang, Bovik, Sheikh & Simoncelli 2004, "Image quality assessment:
from error visibility to structural similarity", IEEE TIP 13(4)).

SSIM is the paper's standard form: local statistics under an 11x11 circular-symmetric Gaussian
window with sigma = 1.5, C1 = (K1 L)^2, C2 = (K2 L)^2 with K1 = 0.01, K2 = 0.03 and L the data
range, averaged over the positions where the window fits inside the image ('valid' region) and
over channels. It is vectorized as one depthwise conv2d over the whole batch; with
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=L`` scikit-image's
``structural_similarity`` computes the same number.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import DataError


def to_image_batch(x: torch.Tensor, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """(N, C, H, W), (N, H, W), or flat (N, D) with ``shape`` or a square D -> (N, C, H, W)."""
    if shape is not None:
        shape = tuple(shape)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3 or math.prod(shape) != x[0].numel():
            raise DataError(f"Cannot view items of {x[0].numel()} values as images of shape {shape}.")
        return x.reshape(x.shape[0], *shape)
    if x.dim() == 4:
        return x
    if x.dim() == 3:
        return x.unsqueeze(1)
    if x.dim() == 2:
        side = math.isqrt(x.shape[1])
        if side * side == x.shape[1]:
            return x.reshape(x.shape[0], 1, side, side)
    raise DataError(f"Items of shape {tuple(x.shape[1:])} are not images; expected (C, H, W), (H, W) or a square number of pixels.")


def psnr(x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio 10 log10(L^2 / MSE) of each item against its reference, (N, ...) -> (N,) dB.

    The MSE is floored at 1e-10 L^2, so an exact copy scores 100 dB instead of +inf and a mean
    over a set stays finite.
    """
    if x.shape != ref.shape:
        raise DataError(f"psnr got images of shape {tuple(x.shape)} and references of shape {tuple(ref.shape)}; expected equal shapes.")
    mse = (x.double() - ref.double()).pow(2).reshape(x.shape[0], -1).mean(1)   # (N,)
    mse = mse.clamp_min(1e-10 * data_range ** 2)
    return (10.0 * torch.log10(data_range ** 2 / mse)).float()


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The normalized 2-D Gaussian window of Wang et al. 2004, (size, size), summing to 1."""
    r = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim_map(
    x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5,
    k1: float = 0.01, k2: float = 0.03,
) -> torch.Tensor:
    """The local SSIM index at every valid window position; (N, C, H, W) -> (N, C, H-w+1, W-w+1)."""
    if x.shape != ref.shape or x.dim() != 4:
        raise DataError(f"ssim needs two (N, C, H, W) batches of equal shape, got {tuple(x.shape)} and {tuple(ref.shape)}.")
    n, c, h, w = x.shape
    if h < window or w < window:
        raise DataError(f"ssim with an {window}x{window} window needs images at least that large, got {h}x{w}.")
    x, ref = x.double(), ref.double()
    kernel = gaussian_window(window, sigma).to(x.device).expand(c, 1, window, window)  # depthwise (C, 1, w, w)
    # One conv over the five maps x, y, x^2, y^2, xy stacked along channels: (N, 5C, H, W).
    stacked = torch.cat([x, ref, x * x, ref * ref, x * ref], dim=1)
    stats = F.conv2d(stacked, kernel.repeat(5, 1, 1, 1), groups=5 * c)          # (N, 5C, H', W')
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(c, dim=1)
    var_x, var_y, cov = e_xx - mu_x ** 2, e_yy - mu_y ** 2, e_xy - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def ssim(x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0, shape: tuple[int, ...] | None = None,
         **kwargs: float) -> torch.Tensor:
    """Mean SSIM of each image against its reference, (N,); images as in :func:`to_image_batch`."""
    xi, ri = to_image_batch(x, shape), to_image_batch(ref, shape)
    return ssim_map(xi, ri, data_range, **kwargs).mean((1, 2, 3)).float()


def _batched(fn, a: torch.Tensor, b: torch.Tensor, batch_size: int = 2000, **kw) -> torch.Tensor:
    return torch.cat([fn(a[i:i + batch_size], b[i:i + batch_size], **kw) for i in range(0, a.shape[0], batch_size)])


@torch.no_grad()
def denoising_report(
    noisy: torch.Tensor, denoised: torch.Tensor, clean: torch.Tensor, *, data_range: float = 1.0,
    shape: tuple[int, ...] | None = None, prefix: str = "",
) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM of the noisy and of the denoised images against the clean ones.

    SSIM is left out when the items cannot be viewed as images of at least 11x11 pixels.
    """
    out = {
        f"{prefix}psnr_noisy": float(_batched(psnr, noisy, clean, data_range=data_range).mean()),
        f"{prefix}psnr_denoised": float(_batched(psnr, denoised, clean, data_range=data_range).mean()),
    }
    try:
        imgs = to_image_batch(clean[:1], shape)
    except DataError:
        return out
    if min(imgs.shape[-2:]) >= 11:
        out[f"{prefix}ssim_noisy"] = float(_batched(ssim, noisy, clean, data_range=data_range, shape=shape).mean())
        out[f"{prefix}ssim_denoised"] = float(_batched(ssim, denoised, clean, data_range=data_range, shape=shape).mean())
    return out
