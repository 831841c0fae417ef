"""Isotropic total variation (Rudin, Osher & Fatemi 1992), colour channels coupled.

    R(x) = sum_i sqrt( sum_c (D_h x)_{c,i}^2 + (D_v x)_{c,i}^2 )

with forward differences and Neumann boundary (the difference across the last row/column is
0). The channels share one gradient magnitude per pixel (the vectorial TV of Blomgren &
Chan 1998 / Bresson & Chan 2008): edges of the colour channels are aligned, which avoids
colour fringes. For gray images it is the usual isotropic TV.

``grad`` is the gradient of the smoothed sum sqrt(|Dx|^2 + eps^2) (Lipschitz 8 / eps);
``prox`` is solved to a tolerance by Beck & Teboulle's FGP on the dual (IEEE TIP 2009),
stopped by the duality gap.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.prior import Prior

LIPSCHITZ_D = 8.0  # ||D||^2 <= 8 for 2-D forward differences


def nabla(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D x = (D_h x, D_v x), forward differences, zero across the last column / row."""
    dh = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1))
    dv = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    return dh, dv


def nabla_adjoint(ph: torch.Tensor, pv: torch.Tensor) -> torch.Tensor:
    """D^T (p_h, p_v) = -div p, the exact adjoint of ``nabla``."""
    qh, qv = ph[..., :, :-1], pv[..., :-1, :]
    return F.pad(qh, (1, 0)) - F.pad(qh, (0, 1)) + F.pad(qv, (0, 0, 1, 0)) - F.pad(qv, (0, 0, 0, 1))


def magnitude(dh: torch.Tensor, dv: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Per-pixel gradient magnitude sqrt(sum_c dh^2 + dv^2 + eps^2), B x 1 x H x W."""
    return (dh.pow(2) + dv.pow(2)).sum(1, keepdim=True).add(eps**2).sqrt()


class TV(Prior):
    """R(x) = isotropic colour TV; E(x) = ||Ax - y||^2 / (2 sigma^2) + weight * R(x).

    ``weight`` is the MAP weight of the prior exp(-weight TV(x)) on the [0, 1] scale; the TV
    threshold of the classic form ||Ax - y||^2 / 2 + mu TV(x) is mu = weight sigma^2.
    """

    provides = frozenset({Capability.GRADIENT, Capability.PROX})
    auto_keys = {"weight": 4.0}

    def __init__(self, weight: float | str = "auto", eps: float = 1e-3, prox_iterations: int = 200,
                 prox_tol: float = 1e-4, preset: dict | None = None):
        self._weight_auto = weight == "auto"
        if not self._weight_auto and (not isinstance(weight, (int, float)) or isinstance(weight, bool)
                                        or not weight >= 0):
            raise PnPError(f"prior.weight must be a number >= 0 or auto, got {weight!r}")
        if eps is None or eps <= 0:
            raise PnPError(f"prior.eps must be > 0, got {eps}")
        super().__init__(weight=self.auto_keys["weight"] if self._weight_auto else weight, preset=preset)
        self.eps = float(eps)
        self.prox_iterations = int(prox_iterations)
        self.prox_tol = float(prox_tol)
        self._dual = None  # the last prox's dual variable, a warm start for the next call

    def setup(self, problem) -> None:
        if self._weight_auto:  # conf/prior/presets/tv.yaml, at the problem's noise level
            self.weight = float(self.preset_values(problem)["weight"])
        self._dual = None

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return magnitude(*nabla(x)).flatten(1).sum(1)

    def grad(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        """D^T (D x / sqrt(|D x|^2 + eps^2)): the gradient of sum_i sqrt(|D x|_i^2 + eps^2)."""
        dh, dv = nabla(x)
        m = magnitude(dh, dv, self.eps)
        return nabla_adjoint(dh / m, dv / m)

    def prox(self, z: torch.Tensor, tau: float) -> torch.Tensor:
        """argmin_v tau R(v) + ||v - z||^2 / 2 by FGP (Beck & Teboulle 2009, Alg. 4).

        Dual: v = z - tau D^T p with |p_i| <= 1; projected gradient ascent on p with step
        1 / (8 tau) and Nesterov momentum. Stops when the duality gap
        G = tau (R(v) - <D v, p>) >= (1/2) ||v - v*||^2 gives RMS(v - v*) <= prox_tol, for
        every batch element, or after ``prox_iterations``. Warm-started from the last dual.
        """
        tau = float(tau)
        if tau < 0:
            raise PnPError(f"the TV prox needs tau >= 0, got {tau}")
        if tau == 0:
            return z.clone()
        warm = self._dual is not None and self._dual[0].shape == z.shape and self._dual[0].dtype == z.dtype
        p = self._dual if warm else (torch.zeros_like(z), torch.zeros_like(z))
        r, t = p, 1.0
        bound = 0.5 * self.prox_tol**2 * z[0].numel()  # gap bound for RMS error <= prox_tol
        for k in range(self.prox_iterations):
            dh, dv = nabla(z - tau * nabla_adjoint(*r))
            ph, pv = r[0] + dh / (LIPSCHITZ_D * tau), r[1] + dv / (LIPSCHITZ_D * tau)
            m = magnitude(ph, pv).clamp_min(1.0)
            p_new = (ph / m, pv / m)
            t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
            r = tuple(a + (t - 1) / t_new * (a - b) for a, b in zip(p_new, p))
            p, t = p_new, t_new
            if k % 5 == 4 and (self.duality_gap(z, tau, p) <= bound).all():
                break
        self._dual = tuple(q.detach() for q in p)
        return z - tau * nabla_adjoint(*p)

    def duality_gap(self, z: torch.Tensor, tau: float, p) -> torch.Tensor:
        """tau (R(v) - <D v, p>) with v = z - tau D^T p, per batch element (>= 0 for |p| <= 1)."""
        v = z - tau * nabla_adjoint(*p)
        dh, dv = nabla(v)
        inner = (dh * p[0] + dv * p[1]).flatten(1).sum(1)
        return tau * (magnitude(dh, dv).flatten(1).sum(1) - inner)
