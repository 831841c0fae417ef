"""Regularization by denoising, RED (Romano, Elad & Milanfar, "The Little Engine that Could:
Regularization by Denoising (RED)", SIAM J. Imaging Sci. 10(4), 2017; code:
github.com/google/RED, minimizers/RunSD.m, RunFP.m, RunADMM.m).

    E(x) = ||H x - y||^2 / (2 sigma^2) + (lambda / 2) x^T (x - D(x, sigma_e))
    grad of the regulariser = lambda (x - D(x, sigma_e))     (local homogeneity, symmetric Jacobian)

Solvers (each one network call per iteration):

- ``gd``, steepest descent (RunSD.m): x <- P(x - mu (H^T(Hx - y) / sigma^2 + lambda (x - D(x)))),
  mu = 2 / (1 / sigma^2 + lambda): ``solver=gd solver.step=2`` (the gd solver normalises g by
  1 / sigma^2 + lambda), 1500 iterations.
- ``fixed_point`` (RunFP.m): (H^T H / sigma^2 + lambda I) x_{k+1} = H^T y / sigma^2 + lambda D(x_k),
  solved by the operator's data step; 200 iterations.
- ``admm`` (RunADMM.m): x = argmin ||Hz - y||^2 / (2 sigma^2) + (beta / 2) ||z - v + u||^2 (data
  step), x^ = alpha x + (1 - alpha) v, v = (beta (x^ + u) + lambda D(v)) / (lambda + beta) (one
  denoiser pass from the previous v, ``inner_iterations``: this is ``prox`` with
  tau = lambda / beta), u <- u + x^ - v; beta = 1e-3, alpha = 2 (deblurring), 200 iterations.

Two details differ from the released code: ``fixed_point`` and ``admm`` do not clip x to
[0, 255] after the data step (RunFP.m and RunADMM.m do; ``gd`` clips, as RunSD.m), and ADMM's
first v-step denoises x^ + u rather than the starting v (RunADMM.m sets v = x first).

The authors' deblurring settings (GetGaussianDeblur*Params.m, 0-255 scale, for noise sqrt(2)):
lambda = 0.01, sigma_e = 4.1, beta = 1e-3. On [0, 1] images E keeps its value when sigma and
sigma_e are divided by 255 and lambda and beta are multiplied by 255^2: ``weight=650.25
sigma=4.1``, ``solver.rho`` = 1e-3 x 255^2 = 65.025; ``sigma`` is given in 0-255 units.

Defaults here: ``sigma: auto`` = 15, or 30 for super-resolution, and ``weight: auto`` = lambda = 6.5 / sigma_n ([0, 1] scale;
650 at noise 2.55, 217 at 7.65, 130 at 12.75), i.e. the data-normalised weight
lambda sigma_n^2 grows like sigma_n.

D is the shipped **colour** model for gray images too (``prior.denoiser.weights: colour``;
replicated channels), though the gray model denoises Set12 0.5 dB better: as RED's
regulariser the gray model is worse at noise >= 7.65. Measured on Set12 01-02 x the 8 Levin
kernels (valid, grid shift, bf16, fixed point, 200 iterations), noise 2.55 / 7.65 / 12.75:
colour model, sigma_e 15: 30.47 / **27.64** / 26.24; gray model with its best sigma_e
(15 / 20 / 20): 30.57 / 27.38 / 26.16; gray model, sigma_e 15: - / - / 25.49 (TV 28.88 / 27.39
/ 26.30). With the gray model below sigma_e 20 the iterates peak after ~20 iterations and then
fit the noise (Set12 01 / Levin 1, noise 12.75, sigma_e 15: 24.83 dB at iteration 22, 22.06 at
200); on that problem and Set12 02 / Levin 8, sigma_e 20 / 25 / 35 at 12.75 gave 24.46, 27.80 /
24.19, 27.70 / 23.27, 26.46, and with sigma_e 20, lambda 50 / 80 / 130 / 200: 23.29 / 24.26 /
24.46 / 24.15 on the first (TV 24.29, 27.93). The colour model there: sigma_e 15 24.63, 27.71,
sigma_e 20 24.40, 27.59. The paper's pair fails at the noise levels of the Levin
benchmark: measured on Set12 01 with Levin kernel 4 (valid), fixed point, 200 iterations, bf16,
PSNR 24.15 / 18.12 dB at noise 2.55 / 7.65 (TV 27.55 / 25.21): sigma_e = 4.1 barely smooths the
noise that deconvolution amplifies, a larger lambda then keeps the blur. A grid over sigma_e in
{4.1, 5, 8, 10, 15, 20, 25} and lambda in {80 .. 10400} gave its best at sigma_e 10-15 with
lambda about 650 / 160-325 / 160 at noise 2.55 / 7.65 / 12.75 (28.64 / 25.32 / 24.01 dB).
Super-resolution leaves most of x in the null space of H, where the fixed point is x = D(x): with
sigma_e = 15 the iterates pass a peak and then grow periodic stripes at the sampling grid,
which D at that level keeps (Set5 bird, bicubic x4, noise-free, fixed point, 200 iterations:
29.46 dB at iteration 4, 20.19 at the end; the same with ADMM, with lambda 65 / 650 / 6500,
and with step 0.5 / 0.2: 25.95 / 28.49). sigma_e = 25 / 30 / 50 is stable: 29.63 / 29.61 / 29.58
(bicubic 28.22); butterfly x4 with 30 / 40: 23.16 / 23.25 (20.86); baby x2 with 30: 36.75 (35.64).
"""
from __future__ import annotations

import torch

from pnp.capabilities import Capability
from pnp.models.loading import COLOUR_ONLY
from pnp.priors._denoiser_mixin import LearnedPrior, at_least_one, positive_or_auto
from pnp.registry import operator_name


AUTO_WEIGHT = 6.5  # weight: auto -> lambda = AUTO_WEIGHT / sigma_n (see the module docstring)
AUTO_SIGMA, AUTO_SIGMA_BY_TASK = 15.0, {"sr": 30.0}  # sigma: auto -> sigma_e (0-255), by operator


class RED(LearnedPrior):
    provides = frozenset({Capability.GRADIENT, Capability.PROX})

    def __init__(self, weight: float | str = "auto", sigma: float | str = "auto", inner_iterations: int = 1,
                 denoiser: dict | None = None):
        self.weight_is_auto, value = positive_or_auto("prior.weight", weight, 1.0)
        super().__init__(weight=value, denoiser={"weights": COLOUR_ONLY, **dict(denoiser or {})})
        self.sigma_is_auto, sigma = positive_or_auto("prior.sigma", sigma, AUTO_SIGMA)
        self.sigma = sigma / 255.0
        self.inner_iterations = at_least_one("prior.inner_iterations", inner_iterations)
        self._v = None

    def setup(self, problem) -> None:
        super().setup(problem)
        if self.weight_is_auto:
            self.weight = AUTO_WEIGHT / problem.sigma_eff
        if self.sigma_is_auto:
            self.sigma = AUTO_SIGMA_BY_TASK.get(operator_name(problem.op), AUTO_SIGMA) / 255.0
        self._v = None

    def denoised(self, x: torch.Tensor) -> torch.Tensor:
        """D(x, sigma_e), shared by the objective and the next gradient/prox at the same x."""
        return self.cached(x, lambda: self.net(x, self.sigma))

    def grad(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        return x - self.denoised(x)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """x^T (x - D(x)) / 2 per batch element."""
        return 0.5 * (x * (x - self.denoised(x))).flatten(1).sum(1)

    def prox(self, z: torch.Tensor, tau: float) -> torch.Tensor:
        """RED-ADMM's v-step for argmin_v tau R(v) + ||v - z||^2 / 2: v <- (z + tau D(v)) / (1 + tau),
        ``inner_iterations`` times, from the previous call's v (RunADMM.m), else from z."""
        warm = self._v is not None and self._v.shape == z.shape
        v = self._v if warm else z
        for _ in range(self.inner_iterations):
            v = (z + tau * self.denoised(v)) / (1 + tau)
        self._v = v
        return v
