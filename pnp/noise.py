"""Noise models (config group ``noise``): y = noise(A x).

Gaussian noise takes sigma in 0-255 units, as the papers write it (``noise.sigma=7.65``).
Every draw uses an explicit ``torch.Generator`` on the CPU, so the same seed gives the same
observation whatever prior, solver or device runs on it.
"""
from __future__ import annotations

import math

import torch

from pnp.errors import PnPError


def _number(value, key: str, rule: str) -> float:
    """``value`` as a finite float, else a PnPError naming ``key`` and what it must be."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise PnPError(f"{key} must be a finite number {rule}, got {value!r}")
    return number


class GaussianNoise:
    """y = z + (sigma / 255) n, n ~ N(0, I)."""

    def __init__(self, sigma: float = 0.0):
        sigma = _number(sigma, "noise.sigma", ">= 0 (0-255 units)")
        if sigma < 0:
            raise PnPError(f"noise.sigma must be >= 0 (0-255 units), got {sigma}")
        self.sigma255 = sigma
        self.sigma = self.sigma255 / 255.0  # on the [0, 1] scale

    def __call__(self, z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.sigma == 0:
            return z.clone()
        n = torch.randn(z.shape, generator=generator, dtype=torch.float64)
        return (z.double() + self.sigma * n).to(z.dtype)


MAX_GAIN = 1e12


class PoissonNoise:
    """y = Poisson(gain z) / gain: photon counting with ``gain`` photons at intensity 1.

    Solvers use the Gaussian approximation of its standard deviation, sqrt(mean(z) / gain).
    """

    def __init__(self, gain: float = 100.0):
        gain = _number(gain, "noise.gain", f"in (0, {MAX_GAIN:g}] (photons at intensity 1)")
        if not 0 < gain <= MAX_GAIN:  # beyond it the float64 Poisson draw loses precision; use noise=none
            raise PnPError(f"noise.gain must be in (0, {MAX_GAIN:g}] (photons at intensity 1; noise=none for "
                           f"no noise), got {gain:g}")
        self.gain = gain
        self.sigma = None  # set from the signal when applied

    def __call__(self, z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        rate = (z.double().clamp_min(0) * self.gain)
        y = torch.poisson(rate, generator=generator) / self.gain
        self.sigma = float((z.double().clamp_min(0).mean() / self.gain).sqrt())
        return y.to(z.dtype)


NOISES = {"gaussian": GaussianNoise, "poisson": PoissonNoise}


def build_noise(name: str, **params):
    if name not in NOISES:
        raise PnPError(f"unknown noise '{name}'; known: {', '.join(sorted(NOISES))}")
    try:
        return NOISES[name](**params)
    except TypeError as err:
        raise PnPError(f"noise '{name}': {err}") from None


def estimate_sigma(y: torch.Tensor) -> float:
    """Blind estimate of white Gaussian noise in ``y`` (any shape ... x H x W, [0, 1] scale):

        sigma = median(|HH|) / 0.6745,   HH = (a - b - c + d) / 2 on each 2 x 2 block,

    the finest diagonal Haar wavelet band, where natural (and blurred) images have almost no
    energy (Donoho & Johnstone, "Ideal spatial adaptation by wavelet shrinkage", 1994).
    """
    h, w = y.shape[-2] // 2 * 2, y.shape[-1] // 2 * 2
    z = y[..., :h, :w].double()
    hh = (z[..., 0::2, 0::2] - z[..., 0::2, 1::2] - z[..., 1::2, 0::2] + z[..., 1::2, 1::2]) / 2
    return float(hh.abs().median()) / 0.6745
