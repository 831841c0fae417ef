"""Half-quadratic splitting with a decreasing noise schedule (Zhang et al., DPIR, TPAMI 2021,
Alg. 1; code: cszn/DPIR utils_pnp.get_rho_sigma, main_dpir_deblur.py):

    sigma_k = logspace(sigma_start, sigma_end, K)                   (0-255 units, / 255)
    rho_k   = lam / sigma_k^2
    x_k     = argmin_x ||Ax - y||^2 / (2 s^2) + (rho_k / 2) ||x - z_{k-1}||^2   (data_step)
    z_k     = prox_R(x_k, tau = lam / rho_k = sigma_k^2)            (a denoiser: D(x_k, sigma_k))

This is HQS on ||Ax - y||^2 / (2 s^2) + lam R(x). DPIR writes the data step unnormalised,
argmin ||y - Hx||^2 + alpha_k ||x - z||^2 with alpha_k = lam s^2 / sigma_k^2 (lam = 0.23,
s = max(noise, 0.255/255)); dividing by 2 s^2 gives rho_k = alpha_k / s^2 = lam / sigma_k^2.
``lam`` null means the prior's weight (a denoiser prior carries DPIR's 0.23); ``sigma_end``
null means max(noise level sigma_eff, ``sigma_end_min``) (DPIR: modelSigma2 = the noise level
for deblurring, max(scale, noise level) for super-resolution, main_dpir_sisr.py).
z_0 = op.init(y) (DPIR starts from the blurred y, or the bicubic upsampling). Returns z_K.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.solver import IterativeSolver


class HQS(IterativeSolver):
    descent = False
    requires = frozenset({Capability.PROX})
    step_param = "solver.sigma_start"

    def __init__(self, iterations: int = 8, sigma_start: float = 49.0, sigma_end: float | None = None,
                 lam: float | None = None, sigma_end_min: float = 0.0):
        super().__init__(iterations)
        if sigma_start <= 0 or (sigma_end is not None and sigma_end <= 0) or sigma_end_min < 0:
            raise PnPError(f"solver.sigma_start and solver.sigma_end must be > 0 and solver.sigma_end_min "
                           f">= 0 (0-255 units), got {sigma_start}, {sigma_end}, {sigma_end_min}")
        if lam is not None and lam <= 0:
            raise PnPError(f"solver.lam must be > 0, got {lam}")
        self.sigma_start, self.sigma_end, self.lam = float(sigma_start), sigma_end, lam
        self.sigma_end_min = float(sigma_end_min)
        self.lam_factor = 1.0  # raised by backoff after a divergence

    def backoff(self) -> bool:
        """Double lam (every rho_k): the data step keeps x nearer z."""
        self.lam_factor *= 2.0
        return True

    def schedule(self, problem) -> list[float]:
        """sigma_k on the [0, 1] scale, log-spaced from sigma_start to sigma_end."""
        start = self.sigma_start / 255.0
        if self.sigma_end is not None:
            end = self.sigma_end / 255.0
        else:
            end = max(problem.sigma_eff, self.sigma_end_min / 255.0)
        if self.iterations == 1:
            return [end]
        ratio = math.log(end / start) / (self.iterations - 1)
        return [start * math.exp(ratio * k) for k in range(self.iterations)]

    def init(self, problem, prior) -> SimpleNamespace:
        lam = self.lam_factor * (float(self.lam) if self.lam is not None else prior.weight)
        self.lam_used = lam
        sigmas = self.schedule(problem)
        self.sigma_schedule = [round(s * 255.0, 4) for s in sigmas]
        return SimpleNamespace(x=self.initial(problem), data=None, lam=lam, sigmas=sigmas)

    def update(self, state, k: int, problem, prior) -> None:
        sigma = state.sigmas[k - 1]
        state.data = problem.data_step(state.x, state.lam / sigma**2, start=state.data)
        state.x = prior.prox(state.data, sigma**2)  # z_k, the reported iterate
