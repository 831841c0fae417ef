"""Image quality metrics: PSNR and SSIM on [0, 1] images, with the papers' border crop.

``channel="y"`` measures on the luma channel of ITU-R BT.601 (MATLAB ``rgb2ycbcr``), as SR
papers do; ``"rgb"`` on all channels.
"""
from __future__ import annotations

import torch
from deepinv.loss.metric import SSIM


def crop_border(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border:-border, border:-border] if border > 0 else x


def to_y(x: torch.Tensor) -> torch.Tensor:
    """Y = 16/255 + (65.481 R + 128.553 G + 24.966 B) / 255 (BT.601, MATLAB rgb2ycbcr)."""
    if x.shape[1] == 1:
        return x
    w = x.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True) / 255.0 + 16.0 / 255.0


def _prepare(x, ref, border, channel):
    x, ref = x.float().clamp(0, 1), ref.float().clamp(0, 1)
    if x.shape != ref.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(ref.shape)}")
    if channel == "y":
        x, ref = to_y(x), to_y(ref)
    return crop_border(x, border), crop_border(ref, border)


def psnr(x: torch.Tensor, ref: torch.Tensor, border: int = 0, channel: str = "rgb") -> torch.Tensor:
    """PSNR = 10 log10(1 / MSE) per batch element, on [0, 1] images clipped to [0, 1]."""
    x, ref = _prepare(x, ref, border, channel)
    mse = (x - ref).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def psnr_border(x: torch.Tensor, ref: torch.Tensor, border: int, channel: str = "rgb") -> torch.Tensor:
    """PSNR over the ring of ``border`` pixels that ``psnr(..., border)`` leaves out (e.g. the
    unobserved ring of valid-boundary deblurring), per batch element."""
    x, ref = _prepare(x, ref, 0, channel)
    ring = torch.ones_like(ref[:1, :1])
    ring[..., border:ring.shape[-2] - border, border:ring.shape[-1] - border] = 0
    sq = ((x - ref).pow(2) * ring).flatten(1).sum(1)
    mse = sq / (ring.sum() * ref.shape[1])
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def aligned_psnr(x: torch.Tensor, ref: torch.Tensor, border: int = 0, channel: str = "rgb",
                 radius: int = 0) -> torch.Tensor:
    """max over integer shifts |dy|, |dx| <= radius of the PSNR of x shifted by (dy, dx), on ref
    cropped by border + radius: the blind-deblurring protocol of Levin et al. (CVPR 2009), where
    an estimated kernel, and so the image, is defined only up to a translation."""
    x, ref = _prepare(x, ref, 0, channel)
    h, w = ref.shape[-2:]
    radius = max(0, min(radius, (min(h, w) - 1) // 2 - border))  # keep at least one pixel
    b = border + radius
    target = ref[..., b:h - b, b:w - b]
    best = None
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            mse = (x[..., b + dy:h - b + dy, b + dx:w - b + dx] - target).pow(2).flatten(1).mean(1)
            value = 10 * torch.log10(1.0 / mse.clamp_min(1e-12))
            best = value if best is None else torch.maximum(best, value)
    return best


_ssim = SSIM()


def ssim(x: torch.Tensor, ref: torch.Tensor, border: int = 0, channel: str = "rgb") -> torch.Tensor:
    """SSIM (Wang et al. 2004; Gaussian window 11, sigma 1.5), deepinv's implementation."""
    x, ref = _prepare(x, ref, border, channel)
    return _ssim(x, ref)
