"""Plug-and-play denoiser prior: the Gaussian denoiser as the proximal operator
(Venkatakrishnan, Bouman & Wohlberg, "Plug-and-Play Priors for Model Based Reconstruction",
GlobalSIP 2013; Zhang, Li, Zuo, Zhang, Van Gool & Timofte, "Plug-and-Play Image Restoration
with Deep Denoiser Prior" (DPIR), IEEE TPAMI 2021; code: github.com/cszn/DPIR).

    prox_{tau R}(z) = argmin_v tau R(v) + ||v - z||^2 / 2  :=  D(z, sqrt(tau))

(R is implicit: the MAP denoiser for noise variance tau is the prox of tau R with R the
negative log prior, so sqrt(tau) is the denoiser's noise level on the [0, 1] scale).

- ``hqs`` (default; DPIR Alg. 1, main_dpir_deblur.py): sigma_k log-spaced from 49/255 down to
  the noise level over K iterations, x_k = data step with rho_k = lambda / sigma_k^2, i.e.
  DPIR's alpha_k = lambda sigma_n^2 / sigma_k^2 with lambda = 0.23 (``weight``),
  z_k = D(x_k, sigma_k). K = 8 for deblurring; DPIR uses K = 24 and ends at
  max(scale, sigma_n) / 255 for super-resolution (``solver.iterations=24
  solver.sigma_end=<scale>``).
- ``admm`` (Venkatakrishnan et al.): x = data step (rho), z = D(x + u, sqrt(lambda / rho)),
  u <- u + x - z; with ``solver.sigma_prox`` the denoiser level in 0-255 units.
"""
from __future__ import annotations

import torch

from pnp.capabilities import Capability
from pnp.priors._denoiser_mixin import LearnedPrior, positive


class DenoiserPrior(LearnedPrior):
    provides = frozenset({Capability.PROX})

    def __init__(self, weight: float = 0.23, denoiser: dict | None = None):
        super().__init__(weight=positive("prior.weight", weight), denoiser=denoiser)

    def prox(self, z: torch.Tensor, tau: float) -> torch.Tensor:
        return self.net(z, float(tau) ** 0.5)
