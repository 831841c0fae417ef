"""The Wiener filter (N. Wiener, "Extrapolation, Interpolation, and Smoothing of Stationary Time
Series", 1949; for images: Gonzalez & Woods, "Digital Image Processing", Sec. 5.8, "Minimum
mean square error (Wiener) filtering").

For y = k * x + n with a circular convolution (A = F^-1 diag(K) F) and white noise of variance
sigma^2, the linear estimate of least mean squared error is, per frequency w and channel,

    X(w) = conj(K(w)) Y(w) / (|K(w)|^2 + weight * sigma^2 / S_x(w))

with S_x the image's power spectral density (per pixel: E|F x|^2 / (H W)). Denoising (K = 1) is
the per-frequency shrinkage Y S_x / (S_x + sigma^2). ``weight`` = 1 is the Wiener filter; other
values over- or under-smooth. S_x (``spectrum``):

- ``power_law`` (default): S_x(w) = P / |w|^exponent, |w| in cycles per pixel, the 1/f^2
  spectrum of natural images (Field 1987; van der Schaaf & van Hateren 1996) for exponent 2.
  The amplitude P is fitted to each observed image and channel by moments: E|Y(w)|^2 / (H W) =
  |K(w)|^2 S_x(w) + sigma^2, summed over w != 0, gives P = sum (|Y|^2 / (H W) - sigma^2) /
  sum |K|^2 |w|^-exponent (at least a tiny positive value). At w = 0, S_x is unbounded and X(0) =
  Y(0) / K(0): the mean is kept. Ours; Gonzalez & Woods use a constant ratio.
- ``constant``: sigma^2 / S_x = ``nsr``, one number for every frequency (Gonzalez & Woods'
  Eq. 5.8-6 with the ratio K set by hand); it does not follow the noise level.

The defaults (power_law, exponent 2.25, weight 1) were chosen on crops of the training images
(docs/classical.md, benchmarks/classical.py): among exponents 1.5-3 and weights 0.5-2, none of
80 problems below the observation and the best mean PSNR within 0.05 dB. A noise-free
problem is filtered at the floor sigma = 0.255 / 255. Needs an operator that the DFT
diagonalises (``Operator.transfer_function``): circular blur or denoising. Solver:
``closed_form`` (``estimate``).
"""
from __future__ import annotations

import torch

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.prior import Prior

SPECTRA = ("power_law", "constant")
TINY = 1e-12


class Wiener(Prior):
    provides = frozenset({Capability.CLOSED_FORM})

    def __init__(self, spectrum: str = "power_law", exponent: float = 2.25, nsr: float = 0.01, weight: float = 1.0):
        if spectrum not in SPECTRA:
            raise PnPError(f"prior.spectrum must be one of {', '.join(SPECTRA)}, got {spectrum!r}")
        for key, value in (("exponent", exponent), ("nsr", nsr), ("weight", weight)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < float(value) < float("inf"):
                raise PnPError(f"prior.{key} must be a number > 0, got {value!r}")
        super().__init__(weight=float(weight))
        self.spectrum, self.exponent, self.nsr = spectrum, float(exponent), float(nsr)

    def params(self) -> dict:
        """The settings the filter used: ``exponent`` for the power law, ``nsr`` for the constant ratio."""
        used = {"exponent": self.exponent} if self.spectrum == "power_law" else {"nsr": self.nsr}
        return {"spectrum": self.spectrum, "weight": self.weight, **used}

    def setup(self, problem) -> None:
        if problem.op.transfer_function() is None:
            raise PnPError("prior 'wiener' needs an operator that the Fourier transform diagonalises; "
                           "use op=blur op.boundary=circular or op=denoise (or another prior for this operator)")

    def estimate(self, problem) -> torch.Tensor:
        """X = conj(K) Y / (|K|^2 + weight sigma^2 / S_x), per image and channel (module docstring)."""
        y = problem.y
        real = y.dtype if y.dtype in (torch.float32, torch.float64) else torch.float32
        complex_dtype = torch.complex128 if real == torch.float64 else torch.complex64
        k = problem.op.transfer_function().to(y.device, complex_dtype)
        spectrum_y = torch.fft.fft2(y.to(real))
        h, w = y.shape[-2:]
        k2 = k.abs() ** 2
        variance = problem.sigma_eff**2
        if self.spectrum == "constant":
            ratio = torch.full_like(k2, self.nsr)
        else:
            fy = torch.fft.fftfreq(h, device=y.device, dtype=real)
            fx = torch.fft.fftfreq(w, device=y.device, dtype=real)
            radius2 = fy[:, None] ** 2 + fx[None, :] ** 2
            falloff = radius2.clamp_min(TINY) ** (self.exponent / 2)  # |w|^exponent; 1 / S_x up to P
            falloff[0, 0] = 0.0
            ac = radius2 > 0
            periodogram = spectrum_y.abs() ** 2 / (h * w)
            signal = (periodogram[..., ac] - variance).sum(-1)
            power = (signal / (k2[ac] / falloff[ac]).sum()).clamp_min(TINY)  # P, per image and channel
            ratio = variance * falloff / power[..., None, None]  # sigma^2 / S_x
        denominator = (k2 + self.weight * ratio).clamp_min(TINY)
        return torch.fft.ifft2(k.conj() * spectrum_y / denominator).real.to(y.dtype)
