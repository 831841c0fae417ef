"""SNIPS: annealed Langevin dynamics in the coordinates of the operator's SVD (config ``solver=snips``;
prior ``score``; an operator with an SVD).

Kawar, Vaksman & Elad, "SNIPS: Solving Noisy Inverse Problems Stochastically", NeurIPS 2021,
Alg. 1. With A = U diag(s) V^T (``Operator.svd``), x_bar = V^T x, y_bar = U^T y, sigma_0 the noise
of y and noise levels sigma_1 > ... > sigma_L (geometric), each level runs tau steps of

    alpha_i,j = c sigma_i^2                                          s_j = 0
              = c (sigma_i^2 - sigma_0^2 / s_j^2)                    s_j sigma_i > sigma_0
              = c sigma_i^2 (1 - s_j^2 sigma_i^2 / sigma_0^2)        s_j sigma_i < sigma_0
    g_j       = [V^T score(x, sigma_i)]_j                            s_j = 0
              = s_j (y_bar_j - s_j x_bar_j) / (s_j^2 sigma_i^2 - sigma_0^2)       s_j sigma_i > sigma_0
              = [V^T score]_j + s_j (y_bar_j - s_j x_bar_j) / (sigma_0^2 - s_j^2 sigma_i^2)
                                                                     s_j sigma_i < sigma_0
    x_bar    <- x_bar + alpha g + sqrt(2 alpha) e,   e ~ N(0, I)

(where y is less noisy than x the prior's score is left out: the likelihood of y given x_bar_j
then is the whole posterior direction). Start: x ~ U(0, 1), as Song & Ermon 2019. With
``denoise`` the sample ends with Tweedie's step at the last level, x + sigma_L^2 score(x, sigma_L)
(NCSNv2's final denoising, the reference code's ``denoise: true``).

The paper's step c = 3.3e-6 / sigma_L^2 with sigma_L = 0.01 (0.033), tau = 5 over 500 levels from 90
(its NCSNv2 networks' levels: 2,500 network calls). Ours: 20 levels x 20 steps from ``sigma_max`` = 1
(the shipped denoiser is trained up to 1.0 on [0, 1] images) with c = 0.2, chosen on training crops
among budgets of 150-400 calls (docs/samplers.md). With a few hundred calls, the coordinates that
only the score drives (s_j = 0: the null space of SR, the missing pixels) mix slowly: a denoiser
that leaves part of the noise in place makes the chain's noise settle above sigma_i, and the
excess stays in the sample. On noise-free and noisy bicubic SR the mean of the samples then
falls near or below bicubic interpolation on some images; ``ddrm`` (which moves to the denoised
estimate at each level) is the sampler to use there. Reference code:
github.com/bahjat-kawar/snips_torch (models/__init__.py).
"""
from __future__ import annotations


import torch

from pnp.errors import PnPError
from pnp.sampling import SpectralSampler, geometric
from pnp.solvers.dip import set_total


class SNIPS(SpectralSampler):
    backoff_param = "c"
    step_param = "solver.c"

    def __init__(self, levels: int = 20, steps: int = 20, c: float = 0.2, denoise: bool = True,
                 samples: int = 8, sigma_max: float = 1.0, sigma_min: float = 0.01, colormap: str = "inferno"):
        for key, value in (("levels", levels), ("steps", steps)):
            if not (isinstance(value, (int, float)) and float(value).is_integer() and value >= 1):
                raise PnPError(f"solver.{key} must be a positive integer, got {value}")
        super().__init__(int(levels) * int(steps), samples, sigma_max, sigma_min, colormap)
        if not (isinstance(c, (int, float)) and 0 < c <= 1):
            raise PnPError(f"solver.c must be in (0, 1], got {c}")
        self.levels, self.steps, self.c, self.denoise = int(levels), int(steps), float(c), bool(denoise)

    def spectral_chains(self, problem, prior, monitor, svd, y, generator) -> torch.Tensor:
        self.iterations = self.levels * self.steps
        set_total(monitor, self.iterations)
        shape = (y.shape[0], *problem.op.shape)
        s, y_bar = self.spectral_data(svd, y, shape)
        observed, var_y = s > 0, problem.sigma**2
        x = torch.rand(shape, generator=generator, device=y.device, dtype=y.dtype)
        x_bar = svd.Vt(x)
        t, sigma = 0, self.sigma_max
        for sigma in geometric(self.sigma_max, self.sigma_min, self.levels):
            gap = s**2 * sigma**2 - var_y  # > 0: x is noisier than y along that direction
            y_led = observed & (gap > 0)
            both = observed & (gap < 0)
            alpha = self.c * torch.where(
                ~observed, torch.full_like(s, sigma**2),
                torch.where(y_led, sigma**2 - var_y / torch.where(observed, s, torch.ones_like(s)) ** 2,
                            sigma**2 * (1 - s**2 * sigma**2 / max(var_y, 1e-300))))
            alpha = torch.where(observed & (gap == 0), torch.zeros_like(s), alpha).clamp_min(0)
            weight = torch.where(gap != 0, s / gap.abs().clamp_min(torch.finfo(y.dtype).tiny), torch.zeros_like(s))
            for _ in range(self.steps):
                score = svd.Vt(prior.score(x, sigma))
                likelihood = weight * (y_bar - s * x_bar)
                grad = torch.where(~observed, score, torch.where(y_led, likelihood,
                                                                 torch.where(both, likelihood + score, 0.0)))
                x_bar = x_bar + alpha * grad + (2 * alpha).sqrt() * self.normal(shape, generator, y)
                x = svd.V(x_bar)
                t += 1
                self.report(monitor, t, x)
                if monitor.should_stop:
                    return x
        if self.denoise:
            x = x + sigma**2 * prior.score(x, sigma)
        return x
