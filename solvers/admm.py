"""Plug-and-play ADMM (Venkatakrishnan, Bouman & Wohlberg 2013; scaled form of Boyd et al. 2011,
with over-relaxation alpha, Boyd Sec. 3.4.3; RED's RunADMM.m) on E = ||Ax - y||^2 / (2 s^2) + lambda R:

    x_{k+1} = argmin_x ||Ax - y||^2 / (2 s^2) + (rho / 2) ||x - (v_k - u_k)||^2     (data_step)
    h_{k+1} = alpha x_{k+1} + (1 - alpha) v_k
    v_{k+1} = prox_R(h_{k+1} + u_k, tau = lambda / rho)                            (prior.prox)
    u_{k+1} = u_k + h_{k+1} - v_{k+1}

``rho`` is in data-term units (1 / intensity^2 on the [0, 1] scale). When null it follows from
``sigma_prox`` (0-255 units), the level at which the prox denoises: lambda / rho =
(sigma_prox / 255)^2; when that is null too, sigma_prox = the noise level sigma_eff * 255.
alpha in (0, 2]: 1 is plain ADMM, 2 is RED's deblurring setting (Peaceman-Rachford). Returns x,
as RED does (x = v at convergence); the objective is reported at v, where the prior has
just evaluated its network (cached), so an iteration costs one denoiser call, not two.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.solver import IterativeSolver


class ADMM(IterativeSolver):
    requires = frozenset({Capability.PROX})
    descent = False
    step_param = "solver.sigma_prox (raise solver.rho)"

    def __init__(self, iterations: int = 100, rho: float | None = None, sigma_prox: float | None = None,
                 alpha: float = 1.0):
        super().__init__(iterations)
        if rho is not None and rho <= 0:
            raise PnPError(f"solver.rho must be > 0, got {rho}")
        if sigma_prox is not None and sigma_prox <= 0:
            raise PnPError(f"solver.sigma_prox must be > 0 (0-255 units), got {sigma_prox}")
        if not 0 < alpha <= 2:
            raise PnPError(f"solver.alpha must be in (0, 2], got {alpha}")
        self.rho, self.sigma_prox, self.alpha = rho, sigma_prox, float(alpha)
        self.rho_factor = 1.0  # raised by backoff after a divergence

    def backoff(self) -> bool:
        """Double the penalty rho: smaller steps of the split."""
        self.rho_factor *= 2.0
        return True

    def penalty(self, problem, prior) -> float:
        if self.rho is not None:
            return float(self.rho) * self.rho_factor
        sigma_prox = self.sigma_prox / 255.0 if self.sigma_prox is not None else problem.sigma_eff
        return self.rho_factor * prior.weight / sigma_prox**2

    def init(self, problem, prior) -> SimpleNamespace:
        rho = self.penalty(problem, prior)
        self.rho_used = rho
        v = self.initial(problem)
        return SimpleNamespace(x=v, v=v, u=torch.zeros_like(v), data=None, rho=rho)

    def update(self, state, k: int, problem, prior) -> None:
        state.data = problem.data_step(state.v - state.u, state.rho, start=state.data)
        h = self.alpha * state.data + (1 - self.alpha) * state.v
        state.v = prior.prox(h + state.u, prior.weight / state.rho)
        state.u = state.u + h - state.v
        state.x = state.data  # the reported iterate: x_k, the data step's solution

    def objective_at(self, state) -> torch.Tensor:
        return state.v
