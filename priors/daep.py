"""Deep autoencoding prior, DAEP (Bigdeli & Zwicker, "Image Restoration using Autoencoding
Priors", VISAPP 2018, arXiv:1703.09964; code: github.com/siavashBigdeli/DAEP, DAEPDeblur.m
and DAEPSR.m).

A denoising autoencoder A trained at noise level sigma (25 on the 0-255 scale) has
A(x) - x proportional to the mean-shift vector, so the prior energy is the distance to the
local mean, ||A(x) - x||^2. With the noisy-input trick (Eq. 8) the prior term is evaluated at
x + eta, eta ~ N(0, sigma^2 I), redrawn each iteration:

    R(x)  = 1/2 ||x - A(x + eta)||^2
    g_p   = grad R = r - J_A(x + eta)^T r,      r = x - A(x + eta)
            (one forward pass and one vector-Jacobian product through the network)
    g_d   = K^T (K x - y)
    g     = w g_p + (1 - w) g_d,   w = (gamma / s^2) / (gamma / s^2 + 1 / sigma_d^2),  s = sqrt(2) sigma

with gamma = 27.5 (the code's 6.875 x 4), i.e. E(x) = ||Kx - y||^2 / (2 sigma_d^2) + (gamma / s^2) R(x):
``weight`` = gamma / s^2. The authors iterate x <- P_[0,255](x + v), v <- 0.9 v - 0.1 g for
300 iterations (``solver=gd`` step 0.1, momentum 0.9). Deblurring starts from the observation
padded by replication (``op=blur op.boundary=valid``) and zeroes g_p on that padded border of
floor(k/2) pixels (DAEPDeblur.m; ``mask_border``). Noise-free super-resolution
(sigma_d = 0, DAEPSR.m) starts from bicubic upsampling and uses w = 1 / sqrt(t) at iteration t
(``schedule``), with the data gradient ``sr_data_grad``:
``bicubic`` = bicubic upsampling of the residual, U(Kx - y), as the authors' code does, or
``adjoint`` = s^2 K^T(Kx - y), the true gradient scaled by the area factor s^2 so that its
magnitude matches U's. For ``op=sr kernel=bicubic`` at an integer scale the two coincide:
MATLAB's bicubic upsampling matrix is exactly s^2 times the transpose of its antialiased
downsampling matrix (checked: U r - s^2 K^T r = 0 on Set5), so both give the same iterates;
they differ for the kernel-based SR operators, where the authors' choice is slightly better:
Set5, Gaussian kernel (width 1.6) x4, noise-free, RGB, border 4, bf16: bicubic 28.77 dB,
adjoint 28.73 (not worse on any image; bicubic upsampling of y 26.02). With noise, SR uses g_d = K^T(Kx - y) like any
other operator, the gradient of the energy that w balances.

**Noise-adaptive gamma** (``gamma: auto``, ours): gamma = min(27.5, 19 / sqrt(sigma_n)), sigma_n in
0-255 units (11.9 / 6.9 / 5.3 at noise 2.55 / 7.65 / 12.75; noise-free SR uses w = 1 / sqrt(t),
where gamma plays no part). With the shipped denoiser the authors' 27.5 over-weights the prior
at every noise level; measured on Set12 01, Levin kernel 4 (valid, bf16, 300 iterations), PSNR
for gamma = 1.7 / 3 / 3.4 / 4.5 / 6.9 / 13.75 / 27.5 / 55: noise 2.55: - / - / - / - / 28.88 /
**29.16** / 28.36 / -; 7.65: 22.67 / - / 25.42 / - / **25.57** / 24.78 / 23.71 / 22.57; 12.75:
21.53 / 23.68 / - / **23.76** / 23.53 / - / 21.93 / - (TV: 27.55 / 25.21 / 23.41). The authors' value:
``prior.gamma=27.5``.

**Noise-free SR sigma** (``sigma: auto``, ours): the autoencoder's level is 25 (the authors'), and
for noise-free super-resolution, where w = 1 / sqrt(t) lets the data term take over and a
stronger smoothing of the prior recovers more, 30 / 40 / 55 at scale 2 / 3 / 4 and above.
Measured on Set5, bicubic x4, 300 iterations, bf16, RGB PSNR (border 4), sigma = 25 / 40 / 55 /
75 / 100: bird 29.93 / 30.16 / **30.32** / 30.24 / 30.10, butterfly 22.89 / 23.48 / 23.85 /
**23.91** / - (bicubic 28.22, 20.86). At x2 and x3 on held-out images (set3c leaves and
starfish, CBSD432 100007 and 100039, 256x256 centre crops; mean RGB PSNR, border = scale):
x2, sigma 22 / 30 / 40 / 55: 30.89 / **30.90** / 30.81 / 30.67 (bicubic 27.85; 500 iterations
at 30: 30.94; step 0.2: 30.90; the mean of the last 60 iterates: +0.00-0.02); x3, sigma 30 /
40 / 45 / 55: 26.99 / **27.03** / 27.03 / 26.97 (24.86); x5, sigma 40 / 55: 23.50 / 23.48.
The authors' value: ``prior.sigma=25``. With noise the autoencoder's level is
min(25, 200 / sigma_n): the authors' 25 up to noise 8, 15.7 at noise 12.75, where the
session-9 denoiser (a better one) over-smoothed at 25. Measured on Set12 03-04 x Levin 2, 4,
6, 8 (valid, bf16, 8 problems per figure, with ``solver.average=60``): noise 12.75, sigma 14 /
18 / 25: 24.72 / 24.69 / 24.54 dB (TV 24.53); noise 7.65, sigma 18 / 25: 26.28 / **26.34**.

**Iterate averaging for deblurring** (``solvers.by_op.blur.gd.average: 60``, ours): the noisy
input redrawn each iteration leaves noise in the last iterate; the mean of the last 60 removes
it (noise 12.75, sigma 25, same 8 problems: 24.42 dB from the last iterate, 24.54 averaged).

On [0, 1] images: eta and sigma are divided by 255, and so are sigma_d and s, which leaves
w unchanged; g_p and g_d are linear in the image scale, so step 0.1 is the authors' step.
Gray images under the colour network get i.i.d. noise of std sqrt(3) sigma on the three
replicated channels and the output channel mean (``LearnedPrior.denoise_noisy``): the same
smoothing sigma in gray, and inputs like the network's training data.
"""
from __future__ import annotations

import math

import torch

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.priors._denoiser_mixin import LearnedPrior, positive_or_auto
from pnp.registry import operator_name

SCHEDULES = ("auto", "fixed", "inv_sqrt")
SR_DATA_GRADS = ("bicubic", "adjoint")
AUTHORS_GAMMA, AUTO_GAMMA = 27.5, 19.0  # gamma: auto (see the module docstring)
AUTHORS_SIGMA = 25.0  # sigma: auto (0-255; see the module docstring)
NOISE_FREE_SR_SIGMA, NOISE_FREE_SR_SIGMA_BY_SCALE = 55.0, {2: 30.0, 3: 40.0}  # noise-free op=sr, by scale
HIGH_NOISE_SIGMA = 200.0  # sigma: auto = min(25, 200 / sigma_n) when noisy (15.7 at noise 12.75)


def auto_gamma(noise: float) -> float:
    """gamma for noise ``noise`` ([0, 1] scale): min(27.5, 19 / sqrt(sigma_n)), sigma_n in 0-255 units."""
    return AUTHORS_GAMMA if noise <= 0 else min(AUTHORS_GAMMA, AUTO_GAMMA / math.sqrt(255.0 * noise))


def noise_free_sr_sigma(scale: int) -> float:
    """Autoencoder sigma (0-255) for noise-free super-resolution by ``scale``: 30 / 40 / 55 at 2 / 3 / >= 4."""
    return NOISE_FREE_SR_SIGMA_BY_SCALE.get(int(scale), NOISE_FREE_SR_SIGMA)


def auto_sigma(noise: float) -> float:
    """Autoencoder sigma (0-255) for noise ``noise`` ([0, 1] scale): min(25, 200 / sigma_n)."""
    return AUTHORS_SIGMA if noise <= 0 else min(AUTHORS_SIGMA, HIGH_NOISE_SIGMA / (255.0 * noise))


class DAEP(LearnedPrior):
    provides = frozenset({Capability.GRADIENT})

    def __init__(self, sigma: float | str = "auto", gamma: float | str = "auto", schedule: str = "auto",
                 sr_data_grad: str = "bicubic", mask_border: bool = True, denoiser: dict | None = None):
        self.sigma_is_auto, sigma = positive_or_auto("prior.sigma", sigma, AUTHORS_SIGMA)
        self.sigma = sigma / 255.0
        self.gamma_is_auto, self.gamma = positive_or_auto("prior.gamma", gamma, AUTHORS_GAMMA)
        if schedule not in SCHEDULES:
            raise PnPError(f"prior.schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        if sr_data_grad not in SR_DATA_GRADS:
            raise PnPError(f"prior.sr_data_grad must be one of {', '.join(SR_DATA_GRADS)}, got {sr_data_grad!r}")
        super().__init__(weight=self.gamma / self.s2, denoiser=denoiser)
        self.schedule, self.sr_data_grad, self.mask_border = schedule, sr_data_grad, bool(mask_border)
        self.problem, self._ab, self.inv_sqrt, self.sr_data_term, self.mask = None, None, False, False, None

    def setup(self, problem) -> None:
        super().setup(problem)
        self.problem, self._ab = problem, None
        self.inv_sqrt = self.schedule == "inv_sqrt" or (self.schedule == "auto" and problem.sigma == 0)
        self.sr_data_term = hasattr(problem.op, "scale") and problem.sigma == 0  # DAEPSR.m: noise-free
        if self.sigma_is_auto:
            noise_free_sr = self.inv_sqrt and operator_name(problem.op) == "sr"
            sigma = noise_free_sr_sigma(problem.op.scale) if noise_free_sr else auto_sigma(problem.sigma)
            self.sigma = sigma / 255.0
        if self.gamma_is_auto:
            self.gamma = auto_gamma(problem.sigma)
        self.weight = self.gamma / self.s2
        self.mask = None
        if self.mask_border and getattr(problem.op, "boundary", None) == "valid":
            bh, bw = (k // 2 for k in problem.op.kernel_shape)
            self.mask = torch.zeros_like(problem.op.init(problem.y[:1]))
            self.mask[..., bh:self.mask.shape[-2] - bh, bw:self.mask.shape[-1] - bw] = 1

    @property
    def s2(self) -> float:
        """s^2 = (sqrt(2) sigma)^2, the prior energy's scale."""
        return 2 * self.sigma**2

    def balance(self, x, problem, step):
        """(1 - w, w): w = 1 / sqrt(t) (noise-free SR), else (gamma/s^2) / (gamma/s^2 + 1/sigma_d^2)."""
        if self.inv_sqrt:
            w = 1.0 / math.sqrt(max(step, 1))
        else:
            w = self.weight / (self.weight + 1.0 / problem.sigma_eff**2)
        self._ab = (1.0 - w, w)
        return self._ab

    def residual(self, x: torch.Tensor, eta: torch.Tensor | None = None):
        """(x', D(x' + eta)) with x' a leaf copy of x that requires grad (for the VJP)."""
        def compute():
            with torch.enable_grad():
                xi = x.detach().requires_grad_(True)
                return xi, self.denoise_noisy(xi, self.sigma, eta)
        return compute() if eta is not None else self.cached(x, compute)

    def energy(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor | None:
        """R(x) = ||x - D(x + eta)||^2 / 2 per batch element (eta: this iteration's draw).

        None under the 1 / sqrt(t) schedule: its early, prior-heavy steps raise the fixed
        objective by design (Set5 bird x2 with sigma 75: x 12 at iteration 6), so there the
        divergence check watches for NaN/Inf only."""
        if self.inv_sqrt:
            return None
        xi, out = self.residual(x, eta)
        return 0.5 * (xi - out).detach().pow(2).flatten(1).sum(1)

    def grad(self, x: torch.Tensor, step: int = 0, eta: torch.Tensor | None = None) -> torch.Tensor:
        """g_p = r - J^T r at x + eta (Eq. 8), by one vector-Jacobian product."""
        xi, out = self.residual(x, eta)
        self.forget()  # the next iteration draws a new eta
        r = (xi - out).detach()
        (jtr,) = torch.autograd.grad(out, xi, grad_outputs=r)
        g = r - jtr
        if self.mask is not None:
            g = g * self.mask
        if self.sr_data_term and self._ab is not None and self._ab[1] > 0:
            g = g + self._sr_correction(x)
        return g

    def _sr_correction(self, x: torch.Tensor) -> torch.Tensor:
        """(a / b) (M r - K^T r): the gd solver's a K^T r + b g becomes a M r + b g_p, with
        M = bicubic upsampling (authors) or s^2 K^T (``sr_data_grad``)."""
        a, b = self._ab
        op = self.problem.op
        r = op.A(x) - self.problem.y
        adjoint = op.A_adjoint(r)
        target = op.baseline(r) if self.sr_data_grad == "bicubic" else op.scale**2 * adjoint
        return (a / b) * (target - adjoint)
