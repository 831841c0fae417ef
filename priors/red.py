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

``fixed_point`` and ``gd`` clip x to [0, 1] after each step, as RunFP.m and RunSD.m do
(without the clip, the built-in image's default deblurring problem ended at 23.50 dB instead of
25.57: its black and white regions drift out of range over 200 iterations). Two details differ
from the released code: ``admm`` does not clip x after the data step (RunADMM.m does), and
its first v-step denoises x^ + u rather than the starting v (RunADMM.m sets v = x first).

The authors' deblurring settings (GetGaussianDeblur*Params.m, 0-255 scale, for noise sqrt(2)):
lambda = 0.01, sigma_e = 4.1, beta = 1e-3. On [0, 1] images E keeps its value when sigma and
sigma_e are divided by 255 and lambda and beta are multiplied by 255^2: ``weight=650.25
sigma=4.1``, ``solver.rho`` = 1e-3 x 255^2 = 65.025; ``sigma`` is given in 0-255 units.

**Defaults** (``weight: auto``, ``sigma: auto``): per-operator presets
(``conf/prior/presets/red.yaml``, tabled over the noise level), chosen by
``benchmarks/tune_defaults.py`` on crops of the training images and validated on held-out
test images (docs/tuning.md). The paper's pair (lambda = 0.01 on the 0-255 scale, sigma_e =
4.1, for noise sqrt(2)) barely smooths the noise that deconvolution amplifies at the usual
benchmark noise levels; the data-normalised weight lambda sigma_n^2 has to grow with the
noise. For super-resolution most of x lies in the null space of H, where the fixed point is
x = D(x): a small sigma_e there grows periodic stripes at the sampling grid, which a larger
one (25-50) does not.

D is the shipped **colour** model for gray images too (``prior.denoiser.weights: colour``;
replicated channels): as RED's regulariser it measured better than the gray model at noise
>= 7.65, though the gray model denoises better.
"""
from __future__ import annotations

import torch

from pnp.capabilities import Capability
from pnp.models.loading import COLOUR_ONLY
from pnp.priors._denoiser_mixin import LearnedPrior, at_least_one, positive_or_auto

PAPER_WEIGHT, PAPER_SIGMA = 650.25, 4.1  # lambda = 0.01 x 255^2 and sigma_e (the paper's, noise sqrt(2))


class RED(LearnedPrior):
    provides = frozenset({Capability.GRADIENT, Capability.PROX})
    auto_keys = {"weight": PAPER_WEIGHT, "sigma": PAPER_SIGMA}

    def __init__(self, weight: float | str = "auto", sigma: float | str = "auto", inner_iterations: int = 1,
                 denoiser: dict | None = None, preset: dict | None = None):
        self.weight_is_auto, value = positive_or_auto("prior.weight", weight, PAPER_WEIGHT)
        super().__init__(weight=value, denoiser={"weights": COLOUR_ONLY, **dict(denoiser or {})}, preset=preset)
        self.sigma_is_auto, sigma = positive_or_auto("prior.sigma", sigma, PAPER_SIGMA)
        self.sigma = sigma / 255.0
        self.inner_iterations = at_least_one("prior.inner_iterations", inner_iterations)
        self._v = None

    def setup(self, problem) -> None:
        super().setup(problem)
        auto = self.preset_values(problem)
        if self.weight_is_auto:
            self.weight = auto["weight"]
        if self.sigma_is_auto:
            self.sigma = auto["sigma"] / 255.0
        self._v = None

    def params(self) -> dict:
        return {"weight": self.weight, "sigma": 255.0 * self.sigma, "inner_iterations": self.inner_iterations,
                **self.denoiser_params()}

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
