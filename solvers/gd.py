"""Projected gradient descent with momentum on the prior's gradient (config ``solver=gd``).

    g_t     = (a A^T(A x_t - y) + b grad R(x_t)) / (a + b),   (a, b) = prior.balance(x_t, problem, t)
    v_{t+1} = momentum v_t - step g_t                         (heavy ball, Polyak 1964)
    x_{t+1} = P_[0,1](x_t + v_{t+1})

With the default balance (a, b) = (1 / sigma^2, lambda), g is the gradient of
E = ||Ax - y||^2 / (2 sigma^2) + lambda R divided by (1 / sigma^2 + lambda): step = 2 is RED's
steepest descent (Romano, Elad & Milanfar 2017, step 2 / (1/sigma^2 + lambda)); DAEP
(Bigdeli & Zwicker 2017) and DMSP (Bigdeli et al. 2017) use step 0.1 with momentum 0.9.
``nesterov: true`` evaluates g at the look-ahead point x_t + momentum v_t (Nesterov 1983).
``average: N`` returns the mean of the last N iterates (pnp/solver.py).
"""
from __future__ import annotations

from types import SimpleNamespace

import torch

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.solver import IterativeSolver


class GradientDescent(IterativeSolver):
    requires = frozenset({Capability.GRADIENT})

    def __init__(self, iterations: int = 200, step: float = 1.0, momentum: float = 0.0,
                 nesterov: bool = False, project: bool = True, average: int = 0):
        super().__init__(iterations, average)
        if not 0 <= momentum < 1:
            raise PnPError(f"solver.momentum must be in [0, 1), got {momentum}")
        self.step, self.momentum = self.positive("step", step), float(momentum)
        self.nesterov, self.project = bool(nesterov), bool(project)

    def direction(self, problem, prior, x: torch.Tensor, t: int) -> torch.Tensor:
        a, b = prior.balance(x, problem, t)
        return (a * problem.data_grad(x) + b * prior.grad(x, t)) / (a + b)

    def init(self, problem, prior) -> SimpleNamespace:
        x = self.initial(problem)
        return SimpleNamespace(x=x, v=torch.zeros_like(x))

    def update(self, state, t: int, problem, prior) -> None:
        probe = state.x + self.momentum * state.v if self.nesterov else state.x
        state.v = self.momentum * state.v - self.step * self.direction(problem, prior, probe, t)
        state.x = state.x + state.v
        if self.project:
            state.x = state.x.clamp(0, 1)
