"""Denoising Diffusion Restoration Models (config ``solver=ddrm``; prior ``score``; an operator with an SVD).

Kawar, Elad, Ermon & Song, "Denoising Diffusion Restoration Models", NeurIPS 2022, Alg. 1 and
eq. (7)-(8), in the variance-exploding form the paper writes them in. In the coordinates of
A = U diag(s) V^T (``Operator.svd``), x_bar = V^T x, y_bar_i = (U^T y)_i / s_i where s_i > 0, and
sigma_y the noise of y, from noise levels sigma_T > ... > sigma_1 > sigma_0 = 0:

    x_bar_T,i   = y_bar_i + sqrt(sigma_T^2 - sigma_y^2 / s_i^2) e         s_i > 0
                = m_i + sigma_T e                                            s_i = 0
    x_theta     = D(x_t, sigma_t) = x_t + sigma_t^2 score(x_t, sigma_t),   x_bar_theta = V^T x_theta
    x_bar_t-1,i = x_bar_theta + sqrt(1 - eta^2) sigma_t-1 (x_bar_t - x_bar_theta) / sigma_t + eta sigma_t-1 e
                                                                            s_i = 0
                = x_bar_theta + sqrt(1 - eta^2) sigma_t-1 (y_bar - x_bar_theta) / (sigma_y / s_i)
                  + eta sigma_t-1 e                                         sigma_t-1 < sigma_y / s_i
                = (1 - eta_b) x_bar_theta + eta_b y_bar + sqrt(sigma_t-1^2 - eta_b^2 sigma_y^2 / s_i^2) e
                                                                            sigma_t-1 >= sigma_y / s_i

e ~ N(0, 1) fresh at each use; x_0 = V x_bar_0 is the sample. eta = 0.85, eta_b = 1: the paper's.

Departures: the paper's sigma_t are the DDPM schedule's (VE-equivalent up to ~157 on [-1, 1]
images); ours are ``steps`` levels geometric from ``sigma_max`` = 1 to ``sigma_min`` on [0, 1]
images (the shipped denoiser is trained up to 1.0), then 0. At sigma_T = 1 the image range is
not negligible, so the unobserved coordinates start around the mid-grey image, m = V^T 0.5,
rather than 0; coordinates with sigma_y / s_i >= sigma_T (too noisy to start from y) start there
too. Reference: deepinv's ``sampling.DDRM`` (complex DFT coefficients, hence its noise / sqrt(2));
ours uses the operator's real orthogonal SVD.
"""
from __future__ import annotations

import math

import torch

from pnp.errors import PnPError
from pnp.sampling import SpectralSampler, geometric
from pnp.solvers.dip import set_total


class DDRM(SpectralSampler):
    backoff_param = None  # nothing to back off: a diverged run returns its best iterate

    def __init__(self, steps: int = 20, eta: float = 0.85, eta_b: float = 1.0, samples: int = 8,
                 sigma_max: float = 1.0, sigma_min: float = 0.01, colormap: str = "inferno"):
        if not (isinstance(steps, (int, float)) and float(steps).is_integer() and steps >= 1):
            raise PnPError(f"solver.steps must be a positive integer, got {steps}")
        super().__init__(int(steps), samples, sigma_max, sigma_min, colormap)
        for key, value in (("eta", eta), ("eta_b", eta_b)):
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise PnPError(f"solver.{key} must be in [0, 1], got {value}")
        self.steps, self.eta, self.eta_b = int(steps), float(eta), float(eta_b)

    def spectral_chains(self, problem, prior, monitor, svd, y, generator) -> torch.Tensor:
        self.iterations = self.steps
        set_total(monitor, self.iterations)
        shape = (y.shape[0], *problem.op.shape)
        sigmas = geometric(self.sigma_max, self.sigma_min, self.steps) + [0.0]
        s, u_y = self.spectral_data(svd, y, shape)
        observed = s > 0
        s_safe = torch.where(observed, s, torch.ones_like(s))
        y_bar = torch.where(observed, u_y / s_safe, torch.zeros_like(s))
        nsr = torch.where(observed, problem.sigma / s_safe, torch.full_like(s, math.inf))  # sigma_y / s_i
        tiny = torch.finfo(y.dtype).tiny
        grey = svd.Vt(torch.full(shape, 0.5, device=y.device, dtype=y.dtype))
        from_y = nsr < sigmas[0]
        e = self.normal(shape, generator, y)
        x_bar = torch.where(from_y, y_bar + (sigmas[0] ** 2 - nsr.clamp(max=sigmas[0]) ** 2).sqrt() * e,
                            grey + sigmas[0] * e)
        keep = math.sqrt(1 - self.eta**2)
        for t, (sigma, following) in enumerate(zip(sigmas[:-1], sigmas[1:]), start=1):
            x = svd.V(x_bar)
            theta = svd.Vt(x + sigma**2 * prior.score(x, sigma))
            e = self.normal(shape, generator, y)
            unobserved = theta + keep * following * (x_bar - theta) / sigma + self.eta * following * e
            noisier = theta + keep * following * (y_bar - theta) / nsr.clamp_min(tiny) + self.eta * following * e
            settled = ((1 - self.eta_b) * theta + self.eta_b * y_bar
                       + (following**2 - (self.eta_b * nsr.clamp(max=following)) ** 2).clamp_min(0).sqrt() * e)
            x_bar = torch.where(~observed, unobserved, torch.where(following < nsr, noisier, settled))
            x = svd.V(x_bar)
            self.report(monitor, t, x)
            if monitor.should_stop:
                break
        return x
