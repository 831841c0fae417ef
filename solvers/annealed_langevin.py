"""Annealed Langevin dynamics with the score of a denoiser (config ``solver=annealed_langevin``;
prior ``score``).

Song & Ermon, "Generative Modeling by Estimating Gradients of the Data Distribution", NeurIPS
2019, Alg. 1, conditioned on y. Geometric noise levels sigma_1 > ... > sigma_L (``sigma_max`` to
``sigma_min``), T steps each:

    alpha_i = eps sigma_i^2 / sigma_L^2
    x <- x + alpha_i [ s(x, sigma_i) + A^T (y - A x) / (sigma_y^2 + sigma_i^2) ] + sqrt(2 alpha_i) z

from x ~ U(0, 1); s(x, sigma) = (D(x, sigma) - x) / sigma^2 is the prior's score and the
likelihood of y is taken at the noise of x plus the noise of y (as in Jalal et al. 2021).
``likelihood: scaled`` (default, ours) replaces sigma_i^2 there by c sigma_i^2, c = ||A A^T||: the
noise of x seen through A has covariance sigma_i^2 A A^T, which for a decimation is far below
sigma_i^2 I (c = 1 / 16 for x4 SR), so the plain formula lets y in 16 times too weakly. For masks
and normalised blurs c = 1 and the two coincide. Measured (Set5 baby 128 crop, SR x4, K = 4,
bf16): plain 21.18 dB at eps 5e-6; scaled 26.22 at eps 2e-5, 27.29 at 5e-6, 16.90 at 1.5e-6,
12.59 at 5e-5 (bicubic: 34.66; ``solver=langevin``: 33.53).

eps, L and T: the config's values, else the prior's per-operator recommendation
(``prior.solvers.by_op`` in conf/prior/score.yaml: eps 5e-6 for inpainting and SR, measured on
that crop: inpainting 70% missing, eps 2e-5 / 1e-5 / 5e-6 / 2e-6 gave 28.80 / 30.80 / 31.28 /
30.46 dB), else Song & Ermon's CIFAR-10 values (eps 2e-5, L = 10, T = 100). ``iterations``, when
set, fixes the total: T = ceil(iterations / L). The values used are in the run record
(``eps_used``, ``levels_used``, ``steps_used``).
"""
from __future__ import annotations

import math

import torch

from pnp.errors import PnPError
from pnp.sampling import Sampler
from pnp.solvers.dip import set_total
from pnp.solvers.fista import operator_norm_sq

SCHEDULE_DEFAULT = {"eps": 2e-5, "levels": 10, "steps": 100}  # Song & Ermon 2019 (CIFAR-10)
LIKELIHOODS = ("scaled", "plain")


class AnnealedLangevin(Sampler):
    step_param = "solver.eps"

    def __init__(self, samples: int = 8, sigma_max: float = 1.0, sigma_min: float = 0.01, eps: float | None = None,
                 levels: int | None = None, steps: int | None = None, iterations: int | None = None,
                 likelihood: str = "scaled", colormap: str = "inferno"):
        super().__init__(1 if iterations is None else iterations, samples, sigma_max, sigma_min, colormap)
        for key, value in (("levels", levels), ("steps", steps)):
            if value is not None and int(value) < 1:
                raise PnPError(f"solver.{key} must be at least 1, got {value}")
        if likelihood not in LIKELIHOODS:
            raise PnPError(f"solver.likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood}")
        if eps is not None and eps <= 0:
            raise PnPError(f"solver.eps must be > 0, got {eps}")
        self.likelihood = likelihood
        self.eps, self.levels, self.steps, self.fixed_iterations = eps, levels, steps, iterations
        self.eps_used, self.levels_used, self.steps_used = None, None, None  # set by chains
        self.step_factor = 1.0  # lowered by backoff after a divergence

    def backoff(self) -> bool:
        """Halve the step eps."""
        self.step_factor *= 0.5
        return True

    def schedule(self) -> dict:
        """eps, levels L, steps T (module docstring)."""
        asked = {"eps": self.eps, "levels": self.levels, "steps": self.steps}
        plan = {k: SCHEDULE_DEFAULT[k] if v is None else v for k, v in asked.items()}
        if self.fixed_iterations is not None:
            plan["steps"] = math.ceil(int(self.fixed_iterations) / int(plan["levels"]))
        return {"eps": self.step_factor * float(plan["eps"]), "levels": int(plan["levels"]), "steps": int(plan["steps"])}

    def chains(self, problem, prior, monitor, y, generator) -> torch.Tensor:
        plan = self.schedule()
        self.eps_used, self.levels_used, self.steps_used = plan["eps"], plan["levels"], plan["steps"]
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
