"""Posterior sampling with the score of a denoiser (config ``solver=langevin``; prior ``score``).

``variant: annealed``: annealed Langevin dynamics (Song & Ermon, "Generative Modeling by
Estimating Gradients of the Data Distribution", NeurIPS 2019, Alg. 1), conditioned on y.
Geometric noise levels sigma_1 > ... > sigma_L (``sigma_max`` to ``sigma_min``), T steps each:

    alpha_i = eps sigma_i^2 / sigma_L^2
    x <- x + alpha_i [ s(x, sigma_i) + A^T (y - A x) / (sigma_y^2 + sigma_i^2) ] + sqrt(2 alpha_i) z

from x ~ U(0, 1); s(x, sigma) = (D(x, sigma) - x) / sigma^2 is the prior's score and the
likelihood of y is taken at the noise of x plus the noise of y (as in Jalal et al. 2021).
``likelihood: scaled`` (default, ours) replaces sigma_i^2 there by c sigma_i^2, c = ||A A^T||: the
noise of x seen through A has covariance sigma_i^2 A A^T, which for a decimation is far below
sigma_i^2 I (c = 1 / 16 for x4 SR), so the plain formula lets y in 16 times too weakly. For masks
and normalised blurs c = 1 and the two coincide. Measured (Set5 baby 128 crop, SR x4, K = 4,
bf16): plain 21.18 dB at eps 5e-6; scaled 26.22 at eps 2e-5, **27.29** at 5e-6, 16.90 at 1.5e-6,
12.59 at 5e-5 (bicubic: 34.66; kadkhodaie: 33.53): better, still far behind.

``variant: kadkhodaie``: stochastic coarse-to-fine ascent (Kadkhodaie & Simoncelli, "Stochastic
solutions for linear inverse problems using the prior implicit in a denoiser", NeurIPS 2021,
Alg. 2). With P the data step of the operator (``problem.data_step``, the MAP combination of
an image with y; for noise-free y the projection onto {x : A x = y}, the paper's
(I - M M^T) v + M x^c):

    h_t     = h0 t / (1 + h0 (t - 1))
    d_t     = P(D(x, sigma_{t-1}); rho = 1 / sigma_{t-1}^2) - x       (the paper's (I - MM^T) f + M(x^c - M^T x))
    sigma_t = ||d_t|| / sqrt(N)
    gamma_t = sigma_t sqrt((1 - beta h_t)^2 - (1 - h_t)^2)
    x      <- x + h_t d_t + gamma_t z,   until sigma_t <= sigma_L

from x ~ N(P(0.5), sigma_0^2 I); each sample stops on its own. The paper's denoiser was blind; ours
is told the previous effective noise sigma_{t-1}.

Both run ``samples`` = K chains as one batch, from a generator seeded by ``problem.seed``, and
return their mean (the MMSE estimate). ``outputs``: ``samples`` (K x C x H x W), ``uncertainty``
(the per-pixel standard deviation over the samples, averaged over channels, as a colour map),
``uncertainty_scale`` (the standard deviation at the top of the colour map: its 99th
percentile), and, when the ground truth is known, ``psnr_single_sample_mean`` and
``uncertainty_error_correlation`` (Pearson, per pixel, between that standard deviation and the
absolute error of the mean).
"""
from __future__ import annotations

import math

import torch

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.sampling import summarise
from pnp.solver import Solver
from pnp.solvers.dip import set_total
from pnp.solvers.fista import operator_norm_sq

# Annealed Langevin: eps, L, T; per operator in conf/prior/score.yaml (prior.solvers.by_op).
# Measured with the shipped denoiser (benchmarks/dip_sampler.py sampler, Set5 baby 128 crop, K = 4,
# bf16), mean PSNR: inpainting 70% missing eps 2e-5 / 1e-5 / 5e-6 / 2e-6 (T = 200): 28.80 / 30.80
# / 31.28 / 30.46 dB (T = 200 at 5e-6: 30.99; eps 5e-5: 24.49, 1.5e-4 diverges); SR x4 eps 2e-5 /
# 5e-6: 20.42 / 21.18 dB (plain likelihood; scaled: see the module docstring). The kadkhodaie
# variant, on the same problems: 33.87 (inpaint) and 33.53 dB (SR), in a quarter of the time: it
# is the default variant.
SCHEDULE_DEFAULT = {"eps": 2e-5, "levels": 10, "steps": 100}  # Song & Ermon 2019 (CIFAR-10)
KADKHODAIE_MAX_ITERATIONS = 3000
VARIANTS = ("annealed", "kadkhodaie")
LIKELIHOODS = ("scaled", "plain")


class Langevin(Solver):
    descent = False
    requires = frozenset({Capability.SCORE})

    def __init__(self, variant: str = "kadkhodaie", samples: int = 8, sigma_max: float = 1.0,
                 sigma_min: float = 0.01, eps: float | None = None, levels: int | None = None,
                 steps: int | None = None, iterations: int | None = None, h0: float = 0.01,
                 beta: float = 0.01, likelihood: str = "scaled", colormap: str = "inferno"):
        super().__init__(1 if iterations is None else iterations)
        if variant not in VARIANTS:
            raise PnPError(f"solver.variant must be one of {', '.join(VARIANTS)}, got {variant}")
        if int(samples) < 1:
            raise PnPError(f"solver.samples must be at least 1, got {samples}")
        if not 0 < sigma_min < sigma_max:
            raise PnPError(f"the noise schedule must decrease: need 0 < solver.sigma_min < solver.sigma_max, "
                           f"got sigma_min={sigma_min}, sigma_max={sigma_max}")
        for key, value in (("levels", levels), ("steps", steps)):
            if value is not None and int(value) < 1:
                raise PnPError(f"solver.{key} must be at least 1, got {value}")
        if likelihood not in LIKELIHOODS:
            raise PnPError(f"solver.likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood}")
        self.likelihood = likelihood
        if eps is not None and eps <= 0:
            raise PnPError(f"solver.eps must be > 0, got {eps}")
        if not (0 < h0 <= 1 and 0 < beta <= 1):
            raise PnPError(f"solver.h0 and solver.beta must be in (0, 1], got h0={h0}, beta={beta}")
        from matplotlib import colormaps

        if colormap not in colormaps:
            raise PnPError(f"solver.colormap: unknown matplotlib colour map '{colormap}'")
        self.variant, self.samples = variant, int(samples)
        self.sigma_max, self.sigma_min = float(sigma_max), float(sigma_min)
        self.config = {"eps": eps, "levels": levels, "steps": steps}
        self.fixed_iterations, self.h0, self.beta, self.colormap = iterations, float(h0), float(beta), colormap
        self.outputs: dict = {}
        self.step_factor = 1.0  # lowered by backoff after a divergence

    def backoff(self) -> bool:
        """Halve the step (h0 or eps)."""
        self.step_factor *= 0.5
        return True

    def schedule(self, problem) -> dict:
        """eps, levels L, steps T: the config's values (the prior's per-operator recommendation,
        ``prior.solvers.by_op``, fills them), else SCHEDULE_DEFAULT.

        ``iterations``, when set, fixes the total: T = ceil(iterations / L).
        """
        task = SCHEDULE_DEFAULT
        plan = {k: task[k] if v is None else v for k, v in self.config.items()}
        if self.fixed_iterations is not None:
            plan["steps"] = math.ceil(int(self.fixed_iterations) / int(plan["levels"]))
        return {"eps": self.step_factor * float(plan["eps"]), "levels": int(plan["levels"]), "steps": int(plan["steps"])}

    def solve(self, problem, prior, monitor) -> torch.Tensor:
        monitor.step_param = "solver.eps" if self.variant == "annealed" else "solver.h0"
        generator = torch.Generator(device=problem.y.device).manual_seed(int(problem.seed))
        y = problem.y.repeat(self.samples, *[1] * (problem.y.dim() - 1))  # one observation per chain
        with torch.no_grad():
            if self.variant == "annealed":
                x = self.annealed(problem, prior, monitor, y, generator)
            else:
                x = self.kadkhodaie(problem, prior, monitor, y, generator)
        samples = x.view(self.samples, -1, *x.shape[1:])  # K x B x C x H x W
        self.outputs = self.summarise(samples, problem)
        return samples.mean(0)

    def annealed(self, problem, prior, monitor, y, generator) -> torch.Tensor:
        plan = self.schedule(problem)
        self.iterations = plan["levels"] * plan["steps"]
        set_total(monitor, self.iterations)
        op, var_y = problem.op, problem.sigma**2
        sigmas = torch.logspace(math.log10(self.sigma_max), math.log10(self.sigma_min), plan["levels"]).tolist()
        shape = (y.shape[0], *op.shape)
        x = torch.rand(shape, generator=generator, device=y.device)
        gain = operator_norm_sq(op, x[:1]) / 1.02 if self.likelihood == "scaled" else 1.0  # ||A A^T||
        t = 0
        for sigma in sigmas:
            alpha = plan["eps"] * sigma**2 / self.sigma_min**2
            for _ in range(plan["steps"]):
                grad = prior.score(x, sigma) + op.A_adjoint(y - op.A(x)) / (var_y + gain * sigma**2)
                noise = torch.randn(shape, generator=generator, device=y.device)
                x = x + alpha * grad + math.sqrt(2 * alpha) * noise
                t += 1
                self.report(monitor, t, x)
                if monitor.should_stop:
                    return x
        return x

    def kadkhodaie(self, problem, prior, monitor, y, generator) -> torch.Tensor:
        self.iterations = int(self.fixed_iterations or KADKHODAIE_MAX_ITERATIONS)
        set_total(monitor, self.iterations)
        op = problem.op
        shape = (y.shape[0], *op.shape)
        pixels = math.prod(op.shape)

        def project(v, sigma):  # P(v): the data step at rho = 1 / sigma^2 (batch mean)
            return op.data_step(y, v, 1.0 / float(sigma.pow(2).mean()), problem.sigma_eff)

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
            if monitor.should_stop or not bool((sigma > self.sigma_min).any()):
                break
        return x

    def report(self, monitor, step: int, x: torch.Tensor) -> None:
        """The running mean of the chains goes to the monitor (PSNR of the estimate, divergence check)."""
        monitor(step, x.view(self.samples, -1, *x.shape[1:]).mean(0))

    def summarise(self, samples: torch.Tensor, problem) -> dict:
        """Samples, the uncertainty map and its scale, single-sample PSNR, std-error correlation
        (``pnp.sampling.summarise``)."""
        return summarise(samples, problem, self.colormap)
