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

**Defaults** (``sigma: auto``, ``gamma: auto``): per-operator presets
(``conf/prior/presets/daep.yaml``, tabled over the noise level and the SR scale), chosen by
``benchmarks/tune_defaults.py`` on crops of the training images and validated on held-out
test images (docs/tuning.md). With the shipped denoiser the authors' gamma = 27.5
over-weights the prior at every noise level. The authors' values: ``prior.sigma=25
prior.gamma=27.5 solver.average=0 prior.mask_border=true prior.sr_data_grad=bicubic``.

**Data gradient for super-resolution** (``sr_data_grad``, default ``adjoint``): the authors'
bicubic upsampling of the residual equals s^2 K^T r only when the image side is a multiple of
the scale; otherwise imresize's upsampling runs on a grid of factor H / ceil(H / s) != s, U K
is no longer positive semi-definite, and the iterates diverge (a 100x121 crop at x3: bicubic
28.3 dB, the authors' gradient 9-11 dB before the divergence guard, the adjoint 35.9 dB).

**Border** (``mask_border``, default false): the authors zero g_p on the replicated ring of
valid-boundary deblurring, where nothing then constrains the colours: the restoration has
coloured stripes there. Off, the prior regularises the whole image (``psnr_border`` in the run
record measures that ring).

**Iterate averaging for deblurring** (``solvers.by_op.blur.gd.average``): the noisy input
redrawn each iteration leaves noise in the last iterate; the mean of the last iterates
removes it. **Deblurring steps** (``solvers.by_op.blur.gd``): 240 steps of 0.125 instead of the
authors' 300 of 0.1 (the same path length, 30) reach the same PSNR on the tuning split (within
0.02 dB at every noise level, valid and circular boundary) with a fifth fewer network calls;
200 of 0.15 lost 0.05 dB at noise 12.75 with circular boundary (docs/tuning.md).

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

SCHEDULES = ("auto", "fixed", "inv_sqrt")
SR_DATA_GRADS = ("bicubic", "adjoint")
AUTHORS_SIGMA, AUTHORS_GAMMA = 25.0, 27.5


class DAEP(LearnedPrior):
    provides = frozenset({Capability.GRADIENT})
    needs_jacobian = True  # g_p needs J^T r: a classical prior.denoiser.name is refused when built
    auto_keys = {"sigma": AUTHORS_SIGMA, "gamma": AUTHORS_GAMMA}

    def __init__(self, sigma: float | str = "auto", gamma: float | str = "auto", schedule: str = "auto",
                 sr_data_grad: str = "adjoint", mask_border: bool = False, denoiser: dict | None = None,
                 preset: dict | None = None):
        self.sigma_is_auto, sigma = positive_or_auto("prior.sigma", sigma, AUTHORS_SIGMA)
        self.sigma = sigma / 255.0
        self.gamma_is_auto, self.gamma = positive_or_auto("prior.gamma", gamma, AUTHORS_GAMMA)
        if schedule not in SCHEDULES:
            raise PnPError(f"prior.schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        if sr_data_grad not in SR_DATA_GRADS:
            raise PnPError(f"prior.sr_data_grad must be one of {', '.join(SR_DATA_GRADS)}, got {sr_data_grad!r}")
        super().__init__(weight=self.gamma / self.s2, denoiser=denoiser, preset=preset)
        self.schedule, self.sr_data_grad, self.mask_border = schedule, sr_data_grad, bool(mask_border)
        self.problem, self._ab, self.inv_sqrt, self.sr_data_term, self.mask = None, None, False, False, None

    def setup(self, problem) -> None:
        super().setup(problem)
        self.problem, self._ab = problem, None
        self.inv_sqrt = self.schedule == "inv_sqrt" or (self.schedule == "auto" and problem.sigma == 0)
        self.sr_data_term = problem.op.scale > 1 and problem.sigma == 0  # DAEPSR.m: noise-free
        auto = self.preset_values(problem)
        if self.sigma_is_auto:
            self.sigma = auto["sigma"] / 255.0
        if self.gamma_is_auto:
            self.gamma = auto["gamma"]
        self.weight = self.gamma / self.s2
        self.mask = None
        if self.mask_border and any(problem.op.valid_border):
            bh, bw = problem.op.valid_border
            self.mask = torch.zeros_like(problem.op.init(problem.y[:1]))
            self.mask[..., bh:self.mask.shape[-2] - bh, bw:self.mask.shape[-1] - bw] = 1

    def params(self) -> dict:
        return {"sigma": 255.0 * self.sigma, "gamma": self.gamma, "weight": self.weight,
                "schedule": "inv_sqrt" if self.inv_sqrt else "fixed", "sr_data_grad": self.sr_data_grad,
                "mask_border": self.mask_border, **self.denoiser_params()}

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
