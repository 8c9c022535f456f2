"""PSNR and SSIM (Wang et al. 2004) against closed forms, a direct evaluation of the SSIM formula
at one window, and scikit-image when it is installed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aekit.errors import DataError
from aekit.evaluate.image import denoising_report, gaussian_window, psnr, ssim, ssim_map, to_image_batch


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_psnr_closed_form():
    ref = rand(3, 1, 16, 16)
    x = ref + 0.1                                   # MSE = 0.01 -> 20 dB at L = 1, 26.02 dB at L = 2
    assert torch.allclose(psnr(x, ref), torch.full((3,), 20.0), atol=1e-4)
    assert torch.allclose(psnr(x, ref, data_range=2.0), torch.full((3,), 20 + 20 * math.log10(2)), atol=1e-4)
    assert float(psnr(ref, ref)[0]) == pytest.approx(100.0)   # floored MSE, not +inf


def test_ssim_of_an_image_with_itself_is_one():
    x = rand(4, 3, 20, 20)
    assert torch.allclose(ssim(x, x), torch.ones(4, dtype=torch.float32), atol=1e-6)


def test_ssim_of_constant_images_closed_form():
    # Constant images: no variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b, c1 = 0.2, 0.7, (0.01 * 1.0) ** 2
    x, y = torch.full((1, 1, 12, 12), a), torch.full((1, 1, 12, 12), b)
    assert float(ssim(x, y)[0]) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-6)


def test_ssim_map_matches_the_formula_at_one_window():
    x, y = rand(1, 1, 15, 15, seed=1), rand(1, 1, 15, 15, seed=2)
    w = gaussian_window().numpy()
    assert w.sum() == pytest.approx(1.0) and w[5, 5] == w.max()
    i, j = 2, 3                                     # window rows i..i+10, columns j..j+10
    px, py = x[0, 0, i:i + 11, j:j + 11].numpy(), y[0, 0, i:i + 11, j:j + 11].numpy()
    mx, my = (w * px).sum(), (w * py).sum()
    vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
    cxy = (w * (px - mx) * (py - my)).sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    expected = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    m = ssim_map(x, y)
    assert m.shape == (1, 1, 5, 5)
    assert float(m[0, 0, i, j]) == pytest.approx(expected, rel=1e-10)


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is not installed (optional cross-check)")
    clean = rand(3, 28, 28, seed=3)
    noisy = (clean + 0.2 * torch.randn(3, 28, 28, generator=torch.Generator().manual_seed(4), dtype=torch.float64)).clamp(0, 1)
    ours = ssim(noisy, clean)
    for k in range(3):
        ref = metrics.structural_similarity(
            noisy[k].numpy(), clean[k].numpy(), gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
        )
        assert float(ours[k]) == pytest.approx(ref, abs=1e-6)
    ref_psnr = metrics.peak_signal_noise_ratio(clean[0].numpy(), noisy[0].numpy(), data_range=1.0)
    assert float(psnr(noisy[:1], clean[:1])[0]) == pytest.approx(ref_psnr, abs=1e-4)


def test_image_views_and_errors():
    assert to_image_batch(torch.zeros(2, 784)).shape == (2, 1, 28, 28)
    assert to_image_batch(torch.zeros(2, 28, 28)).shape == (2, 1, 28, 28)
    assert to_image_batch(torch.zeros(2, 12), shape=(3, 2, 2)).shape == (2, 3, 2, 2)
    with pytest.raises(DataError, match="not images"):
        to_image_batch(torch.zeros(2, 10))
    with pytest.raises(DataError, match="at least"):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(DataError, match="equal shapes"):
        psnr(torch.zeros(1, 4), torch.zeros(1, 5))


def test_denoising_report():
    clean = rand(5, 784, seed=5).float()
    noisy = (clean + 0.3).clamp(0, 1)
    rep = denoising_report(noisy, clean, clean)
    assert rep["psnr_denoised"] == pytest.approx(100.0) and rep["ssim_denoised"] == pytest.approx(1.0)
    assert rep["psnr_noisy"] < 20 and rep["ssim_noisy"] < 1
    assert set(denoising_report(noisy[:, :10], clean[:, :10], clean[:, :10])) == {"psnr_noisy", "psnr_denoised"}
    assert np.isfinite(list(rep.values())).all()
