"""Posterior sampling by stochastic coarse-to-fine ascent with the score of a denoiser (config
``solver=langevin``; prior ``score``).

Kadkhodaie & Simoncelli, "Stochastic solutions for linear inverse problems using the prior
implicit in a denoiser", NeurIPS 2021, Alg. 2. With P the data step of the operator
(``problem.data_step``, the MAP combination of an image with y; for noise-free y the projection
onto {x : A x = y}, the paper's (I - M M^T) v + M x^c):

    h_t     = h0 t / (1 + h0 (t - 1))
    d_t     = P(D(x, sigma_{t-1}); rho = 1 / sigma_{t-1}^2) - x       (the paper's (I - MM^T) f + M(x^c - M^T x))
    sigma_t = ||d_t|| / sqrt(N)
    gamma_t = sigma_t sqrt((1 - beta h_t)^2 - (1 - h_t)^2)
    x      <- x + h_t d_t + gamma_t z,   until sigma_t <= sigma_L

from x ~ N(P(0.5), sigma_0^2 I); each chain stops on its own. The paper's denoiser was blind;
ours is told the previous effective noise sigma_{t-1}. D(x, sigma) = x + sigma^2 s(x, sigma)
(Tweedie) from the prior's score.

``samples`` = K chains run as one batch and their mean is the restored image
(``pnp.sampling.Sampler``: samples, uncertainty map, single-sample PSNR, uncertainty-error
correlation). Measured against annealed Langevin dynamics (``solver=annealed_langevin``) with the
shipped denoiser (Set5 baby 128 crop, K = 4, bf16), mean PSNR: inpainting 70% missing 33.87
against 31.28 dB, SR x4 33.53 against 27.29, in a quarter of the time; it is the default sampler
of ``prior=score``.
"""
from __future__ import annotations

import math

import torch

from pnp.errors import PnPError
from pnp.sampling import Sampler
from pnp.solvers.dip import set_total

MAX_ITERATIONS = 3000  # the most steps when solver.iterations is null


class Langevin(Sampler):
    step_param = "solver.h0"

    def __init__(self, samples: int = 8, sigma_max: float = 1.0, sigma_min: float = 0.01,
                 iterations: int | None = None, h0: float = 0.01, beta: float = 0.01, colormap: str = "inferno"):
        super().__init__(MAX_ITERATIONS if iterations is None else iterations, samples, sigma_max, sigma_min, colormap)
        if not (0 < h0 <= 1 and 0 < beta <= 1):
            raise PnPError(f"solver.h0 and solver.beta must be in (0, 1], got h0={h0}, beta={beta}")
        self.h0, self.beta = float(h0), float(beta)
        self.step_factor = 1.0  # lowered by backoff after a divergence

    def backoff(self) -> bool:
        """Halve the step h0."""
        self.step_factor *= 0.5
        return True

    def chains(self, problem, prior, monitor, y, generator) -> torch.Tensor:
        set_total(monitor, self.iterations)
        op = problem.op
        shape = (y.shape[0], *op.shape)
        pixels = math.prod(op.shape)

        def project(v, sigma):  # P(v): the data step at rho = 1 / sigma^2 (batch mean)
            return op.data_step(y, v, 1.0 / sigma.pow(2).mean(), problem.sigma_eff)  # rho stays on the device

        sigma = torch.full((shape[0],), self.sigma_max, device=y.device)
        x = project(torch.full(shape, 0.5, device=y.device), sigma)
        x = x + self.sigma_max * torch.randn(shape, generator=generator, device=y.device)
        for t in range(1, self.iterations + 1):
            h0 = self.step_factor * self.h0
            h = h0 * t / (1 + h0 * (t - 1))
            active = sigma > self.sigma_min
            s = sigma.view(-1, 1, 1, 1)  # one noise level per chain
            d = project(x + s**2 * prior.score(x, s), sigma) - x  # D(x, s) = x + s^2 score(x, s) (Tweedie)
            sigma = torch.where(active, d.flatten(1).norm(dim=1) / math.sqrt(pixels), sigma)
            gamma = sigma * math.sqrt(max((1 - self.beta * h) ** 2 - (1 - h) ** 2, 0.0))
            noise = torch.randn(shape, generator=generator, device=y.device)
            step = h * d + gamma.view(-1, 1, 1, 1) * noise
            x = x + active.view(-1, 1, 1, 1) * step
            self.report(monitor, t, x)
            # every chain stopped: checked where a row is due (a host look; on CUDA every log_every steps;
            # a stopped chain no longer moves, so a late check changes nothing but the time)
            if monitor.should_stop or (monitor.due(t, x.device) and not bool((sigma > self.sigma_min).any())):
                break
        return x
