"""FISTA (Beck & Teboulle, SIAM J. Imaging Sci. 2009) on E = ||Ax - y||^2 / (2 s^2) + lambda R.

    x_k     = prox_R( w_k - (step / L) A^T(A w_k - y) / s^2,  tau = step lambda / L )
    t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2
    w_{k+1} = x_k + ((t_k - 1) / t_{k+1}) (x_k - x_{k-1})

L = ||A||^2 / s^2 is the Lipschitz constant of the data gradient; ||A||^2 is estimated by
power iteration on A^T A (cached per operator, with a 2% margin). ``step`` <= 1 keeps the
convergence guarantee for convex R; smaller steps can stabilise non-convex (denoiser) priors.
"""
from __future__ import annotations

import weakref

from types import SimpleNamespace

import torch

from pnp.capabilities import Capability
from pnp.solver import IterativeSolver

_NORM_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def operator_norm_sq(op, like: torch.Tensor, iterations: int = 100, tol: float = 1e-4) -> float:
    """||A||^2, the largest eigenvalue of A^T A, by power iteration (x 1.02: the Rayleigh quotient
    approaches it from below). The start, a constant image plus seeded noise, is (nearly) the top
    eigenvector of blurs, masks and decimations, where a random start converges slowly."""
    key = (tuple(like.shape[1:]), like.dtype, str(like.device))
    cached = _NORM_CACHE.setdefault(op, {})
    if key not in cached:
        noise = torch.randn((1, *like.shape[1:]), generator=torch.Generator().manual_seed(0), dtype=like.dtype)
        v = (1 + 0.1 * noise).to(like.device)
        v, value = v / v.norm(), 0.0
        for _ in range(iterations):
            w = op.A_adjoint(op.A(v))
            previous, value = value, float((v * w).sum())  # Rayleigh quotient v^T A^T A v
            v = w / w.norm()
            if abs(value - previous) <= tol * value:
                break
        cached[key] = 1.02 * value
    return cached[key]


class FISTA(IterativeSolver):
    requires = frozenset({Capability.PROX})

    def __init__(self, iterations: int = 100, step: float = 1.0):
        super().__init__(iterations)
        self.step = self.positive("step", step)

    def init(self, problem, prior) -> SimpleNamespace:
        x = self.initial(problem)
        s2 = problem.sigma_eff**2
        return SimpleNamespace(x=x, w=x, t=1.0, s2=s2, gamma=self.step / (operator_norm_sq(problem.op, x) / s2))

    def update(self, state, k: int, problem, prior) -> None:
        gamma = state.gamma
        x_new = prior.prox(state.w - gamma * problem.data_grad(state.w) / state.s2, gamma * prior.weight)
        t_new = (1 + (1 + 4 * state.t * state.t) ** 0.5) / 2
        state.w = x_new + ((state.t - 1) / t_new) * (x_new - state.x)
        state.x, state.t = x_new, t_new
