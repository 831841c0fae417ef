"""Blind kernel estimation (priors/_kernel_estimate.py) and the shift-aligned measures of blind runs."""
from __future__ import annotations

import pytest
import torch

from pnp.metrics import aligned_psnr, psnr
from pnp.operators.kernels import make_kernel
from pnp.priors._kernel_estimate import aligned_error, centred, convolve_valid, correlate_full, estimate_kernel
from pnp.priors.dmsp import gaussian
from test_priors import crop


def test_correlate_full_is_the_adjoint_of_convolve_valid():
    g = torch.Generator().manual_seed(0)
    x, k = torch.randn(20, 23, generator=g, dtype=torch.float64), torch.rand(5, 7, generator=g, dtype=torch.float64)
    y = torch.randn(16, 17, generator=g, dtype=torch.float64)
    assert torch.allclose((convolve_valid(x, k) * y).sum(), (x * correlate_full(y, k)).sum())
    direct = torch.nn.functional.conv2d(x[None, None], k.flip(0, 1)[None, None])[0, 0]  # true convolution, valid
    assert torch.allclose(convolve_valid(x, k), direct)


def test_l0_estimate_recovers_a_motion_kernel_from_a_gaussian_start():
    """Built-in image, 128x128 gray crop, a 15x15 random motion kernel, noise 0.01: from a width-3
    Gaussian (error 0.92) the estimate reaches 0.54 (measured); a wrong estimate stays near 0.9."""
    x = crop(128).mean(1)[0].double()
    k = torch.as_tensor(make_kernel("motion", 15, 1.6, torch.Generator().manual_seed(1))).double()
    noise = torch.randn(114, 114, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    start = gaussian((15, 15), 3.0, k)
    estimate = estimate_kernel(convolve_valid(x, k) + 0.01 * noise, start)
    assert estimate.shape == (15, 15) and estimate.min() >= 0 and float(estimate.sum()) == pytest.approx(1.0)
    assert aligned_error(start, k) > 0.9 and aligned_error(estimate, k) < 0.65


def test_aligned_measures_ignore_a_translation():
    k = torch.zeros(9, 9, dtype=torch.float64)
    k[3, 2:6] = 0.25
    assert aligned_error(torch.roll(k, (2, -1), (0, 1)), k) < 1e-7 and aligned_error(gaussian((9, 9), 2.0, k), k) > 0.5
    assert centred(torch.roll(k, (2, -1), (0, 1)))[4].sum() == 1.0  # centre of mass back on row 4
    ref = crop(48)
    moved = torch.roll(ref, (1, -2), (-2, -1))
    assert float(psnr(moved, ref, 4)) < 30 and float(aligned_psnr(moved, ref, 4, radius=3)) > 100
    assert float(aligned_psnr(ref, ref, 4, radius=0)) == float(psnr(ref, ref, 4))


def test_a_flat_observation_keeps_a_finite_normalised_kernel():
    start = gaussian((9, 9), 3.0, torch.zeros(1, dtype=torch.float64))
    k = estimate_kernel(torch.full((40, 40), 0.5, dtype=torch.float64), start)
    assert torch.isfinite(k).all() and float(k.sum()) == pytest.approx(1.0)
