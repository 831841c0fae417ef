"""Blind blur-kernel estimation by L0-regularised gradients, coarse to fine (Xu, Zheng & Jia,
"Unnatural L0 Sparse Representation for Natural Image Deblurring", CVPR 2013; the pyramid,
thresholds and schedule of Pan et al.'s released code, "Deblurring Text Images via
L0-Regularized Intensity and Gradient Prior", CVPR 2014). Used by kernel-blind DMSP to find
the kernel its Bayes-risk alternation starts from.

Observation model: y = k *valid x (MATLAB ``conv2(x, k, 'valid')``), one gray channel. At each
pyramid level (kernel sizes shrink by sqrt(2) down to about 5 pixels, y resized alike):

    x <- argmin_x ||k *valid x - y||^2 + lam ||grad x||_0                  (``sharp_latent``)
    k <- argmin_k sum_d ||d x *valid k - d y||^2 + gamma ||k||^2,  d = horizontal, vertical
         differences; then k >= 0, taps under 5% of the peak set to 0, sum 1  (``fit_kernel``)
    lam <- max(lam / 1.1, 1e-4)

five times per level; the kernel is upsampled to the next level and re-centred on its centre
of mass (a blind estimate is defined up to a translation). The L0 latent image keeps only
strong edges, which is what makes the kernel identifiable: from a smooth latent image the
least-squares kernel collapses towards a delta (a blurry x already fits y).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pnp.operator import conjugate_gradients
from pnp.operators import blur


def convolve_valid(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """k *valid x (the blur operator's A, ``operators/blur.py``), for a kernel given as an array."""
    return blur.convolve_valid(x, k.shape[-2:], torch.fft.rfft2(k, s=x.shape[-2:]))


def correlate_full(y: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The adjoint of ``convolve_valid`` in x (the blur operator's A^T)."""
    kh, kw = k.shape[-2:]
    return blur.correlate_full(y, (kh, kw), torch.fft.rfft2(k, s=(y.shape[-2] + kh - 1, y.shape[-1] + kw - 1)))


def _grad(x):  # circular forward differences
    return x.roll(-1, -1) - x, x.roll(-1, -2) - x


def _grad_adjoint(h, v):
    return (h.roll(1, -1) - h) + (v.roll(1, -2) - v)


def sharp_latent(y: torch.Tensor, k: torch.Tensor, lam: float, beta_max: float = 1e5,
                 cg_iterations: int = 4) -> torch.Tensor:
    """argmin_x ||k *valid x - y||^2 + lam ||grad x||_0 by half-quadratic splitting (Xu et al.
    2013): with u ~ grad x, u = grad x where |grad x|^2 >= lam / beta and 0 elsewhere, then
    (K^T K + beta D^T D) x = K^T y + beta D^T u by conjugate gradients preconditioned by its
    circular-boundary version (inverted by FFTs); beta = 2 lam, 4 lam, ... up to ``beta_max``."""
    kh, kw = k.shape[-2:]
    size = (y.shape[-2] + kh - 1, y.shape[-1] + kw - 1)
    kernel_power = torch.fft.rfft2(k, s=size).abs() ** 2
    fh = torch.fft.rfftfreq(size[1], dtype=y.dtype, device=y.device)
    fv = torch.fft.fftfreq(size[0], dtype=y.dtype, device=y.device)
    grad_power = (2 - 2 * torch.cos(2 * math.pi * fh))[None, :] + (2 - 2 * torch.cos(2 * math.pi * fv))[:, None]
    adjoint_y = correlate_full(y, k)
    x = F.pad(y[None], ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2), mode="replicate")[0]
    beta = 2 * lam
    while beta < beta_max:
        h, v = _grad(x)
        keep = (h**2 + v**2) >= lam / beta
        b = adjoint_y + beta * _grad_adjoint(h * keep, v * keep)
        normal = lambda z: correlate_full(convolve_valid(z, k), k) + beta * _grad_adjoint(*_grad(z))  # noqa: E731
        denominator = kernel_power + beta * grad_power
        precondition = lambda r: torch.fft.irfft2(torch.fft.rfft2(r) / denominator, s=size)  # noqa: E731
        x = conjugate_gradients(normal, b, x, precondition, cg_iterations, tol=0.0)
        beta *= 2
    return x


def _valid_differences(x):
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def fit_kernel(x: torch.Tensor, y: torch.Tensor, shape: tuple[int, int], gamma: float = 2.0,
               iterations: int = 30) -> torch.Tensor:
    """argmin_k sum_d ||d x *valid k - d y||^2 + gamma ||k||^2 (conjugate gradients; the
    adjoint in k by autograd through ``convolve_valid``), then k >= 0, taps below 5% of the
    peak zeroed, sum 1 (Pan et al.'s thresholds; gamma = 2 on the [0, 1] scale as theirs)."""
    pairs = list(zip(_valid_differences(x), _valid_differences(y)))

    def adjoint(residuals):  # sum_d (d x *valid .)^T r_d, an array of the kernel's shape
        with torch.enable_grad():
            k = torch.zeros(shape, dtype=x.dtype, device=x.device, requires_grad=True)
            inner = sum((convolve_valid(dx, k) * r).sum() for (dx, _), r in zip(pairs, residuals))
            return torch.autograd.grad(inner, k)[0]

    def normal(k):
        return adjoint([convolve_valid(dx, k) for dx, _ in pairs]) + gamma * k

    b = adjoint([dy for _, dy in pairs])
    k = conjugate_gradients(normal, b, torch.zeros(shape, dtype=x.dtype, device=x.device), iterations=iterations, tol=1e-8)
    k = k.clamp_min(0)
    k[k < 0.05 * k.max()] = 0
    return k / k.sum().clamp_min(1e-30)


def centred(k: torch.Tensor) -> torch.Tensor:
    """k moved by whole pixels so that its centre of mass is nearest its centre pixel."""
    rows, cols = (torch.arange(n, dtype=k.dtype, device=k.device) for n in k.shape)
    mass = k.sum()
    cy, cx = float((k.sum(1) * rows).sum() / mass), float((k.sum(0) * cols).sum() / mass)
    shift = (round(k.shape[0] // 2 - cy), round(k.shape[1] // 2 - cx))
    moved = torch.zeros_like(k)  # a shift, not a roll: taps pushed off the edge are dropped
    src = [slice(max(0, -s), n - max(0, s)) for s, n in zip(shift, k.shape)]
    dst = [slice(max(0, s), n - max(0, -s)) for s, n in zip(shift, k.shape)]
    moved[dst[0], dst[1]] = k[src[0], src[1]]
    return moved / moved.sum().clamp_min(1e-30)


def _resized(k: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    k = F.interpolate(k[None, None], size=shape, mode="bilinear", antialias=True, align_corners=False)[0, 0]
    k = k.clamp_min(0)
    return k / k.sum().clamp_min(1e-30)


def pyramid_sizes(shape: tuple[int, int], smallest: int = 5) -> list[tuple[float, tuple[int, int]]]:
    """(scale, odd kernel size) per level, coarsest first: scales sqrt(1/2)^l down to the level
    whose kernel is about ``smallest`` pixels (Pan et al.)."""
    ratio = math.sqrt(0.5)
    levels = max(int(math.floor(math.log(smallest / min(shape)) / math.log(ratio))), 0) + 1
    out = []
    for level in range(levels - 1, -1, -1):
        s = ratio**level
        size = tuple(n + (n % 2 == 0) for n in (math.ceil(m * s) for m in shape))
        out.append((s, size))
    return out


def estimate_kernel(y: torch.Tensor, initial: torch.Tensor, lam: float = 4e-3,
                    iterations: int = 5) -> torch.Tensor:
    """The kernel of ``y`` (H x W, [0, 1], gray; noise already removed) for a latent image under
    valid convolution, from ``initial`` (its shape is the kernel's), coarse to fine."""
    y = y.double()
    k = initial.double()
    for scale, size in pyramid_sizes(tuple(initial.shape)):
        level_y = y if scale == 1 else F.interpolate(y[None, None], scale_factor=scale, mode="bilinear",
                                                     antialias=True, align_corners=False)[0, 0]
        k = _resized(k, size)
        for _ in range(iterations):
            x = sharp_latent(level_y, k, lam)
            fitted = fit_kernel(x, level_y, size)
            k = fitted if fitted.sum() > 0 else k  # no gradients at all (a flat image): keep k
            lam = max(lam / 1.1, 1e-4)
        k = centred(k)
    return k.to(initial.dtype)


def aligned_error(k: torch.Tensor, k_true: torch.Tensor) -> float:
    """min over integer translations t of ||shift_t(k) - k_true|| / ||k_true|| (same shapes; taps
    shifted out of the window count as error): ||k||^2 + ||k_true||^2 - 2 max_t <shift_t(k), k_true>."""
    h, w = k_true.shape
    overlaps = F.conv2d(F.pad(k[None, None].double(), (w - 1, w - 1, h - 1, h - 1)), k_true[None, None].double())
    squared = k.double().pow(2).sum() + k_true.double().pow(2).sum() - 2 * overlaps.max()
    return float(squared.clamp_min(0).sqrt() / k_true.double().norm())
