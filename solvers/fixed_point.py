"""RED's fixed-point iteration (Romano, Elad & Milanfar, SIAM J. Imaging Sci. 2017; code:
google/RED minimizers/RunFP.m), with a step size.

RED solves A^T(Ax - y) / s^2 + lambda grad R(x) = 0 with D(x) := x - grad R(x) by
(A^T A / s^2 + lambda I) x_{k+1} = A^T y / s^2 + lambda D(x_k). With a step gamma:

    x_{k+1} = argmin_x ||Ax - y||^2 / (2 s^2) + (lambda / (2 gamma)) ||x - (x_k - gamma grad R(x_k))||^2
            = problem.data_step(x_k - gamma grad R(x_k), rho = lambda / gamma)

gamma = 1 is RED's iteration. It is forward-backward splitting (gradient step on lambda R,
proximal step on the data term, step gamma / lambda), which converges for gamma < 2 / L_R,
L_R the Lipschitz constant of grad R (<= 1 for RED's denoiser residual; 8 / eps for smoothed TV).
``project: true`` (the default) clips x_{k+1} to [0, 1] as RunFP.m does: a denoiser trained on
[0, 1] images is not trusted outside it, and without the clip saturated regions (black or white)
of a large image drift over hundreds of iterations. ``average: N`` returns the mean of the last
N iterates (pnp/solver.py; ours, not in RunFP.m).
"""
from __future__ import annotations

from types import SimpleNamespace

from pnp.capabilities import Capability
from pnp.solver import IterativeSolver


class FixedPoint(IterativeSolver):
    requires = frozenset({Capability.GRADIENT})

    def __init__(self, iterations: int = 100, step: float = 1.0, project: bool = True, average: int = 0):
        super().__init__(iterations, average)
        self.step = self.positive("step", step)
        self.project = bool(project)

    def init(self, problem, prior) -> SimpleNamespace:
        return SimpleNamespace(x=self.initial(problem), rho=prior.weight / self.step)

    def update(self, state, k: int, problem, prior) -> None:
        x = problem.data_step(state.x - self.step * prior.grad(state.x, k), state.rho, start=state.x)
        state.x = x.clamp(0, 1) if self.project else x
