"""Base class of the linear degradations A (config group ``op``).

An operator is built for one image shape ``(C, H, W)`` and one random generator, so that
its random parts (masks, sensing matrices, motion kernels) are fixed by the seed. It wraps
a deepinv ``LinearPhysics`` wherever deepinv has the operator (``self.physics``).
"""
from __future__ import annotations

from typing import ClassVar

import torch

from pnp.errors import PnPError

# Operator capabilities (``Operator.provides``, ``Solver.requires_operator``): the method an
# operator implements for each, and how an error message names it.
OPERATOR_CAPABILITIES = {"svd": "an SVD"}  # svd(): pnp.svd.SVD, A = U diag(s) V^T


class Operator(torch.nn.Module):
    """A linear operator A with adjoint A^T and the data step.

    Subclasses set ``self.physics`` (a deepinv ``LinearPhysics``) or override ``A`` and
    ``A_adjoint``; they override ``data_step`` where a closed form exists. One whose data step
    is iterative may set ``warm_start = True`` and take ``data_step(..., start=x)``: the
    solvers then pass their previous solution as the starting point.
    """

    # Capabilities a solver may need of the operator (``Solver.requires_operator``), e.g. "svd";
    # ``provides_when``: the configuration a capability needs, where not every one has it.
    provides: ClassVar[frozenset[str]] = frozenset()
    provides_when: ClassVar[dict[str, str]] = {}
    warm_start = False
    scale = 1  # the resolution factor between x and y (super-resolution: > 1); presets are tabled over it

    def __init__(self, shape: tuple[int, int, int], generator: torch.Generator | None = None):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)  # (C, H, W) of the image x

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.physics.A(x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.physics.A_adjoint(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def data_step(self, y: torch.Tensor, z: torch.Tensor, rho: float, sigma: float) -> torch.Tensor:
        """x = argmin_x ||Ax - y||^2 / (2 sigma^2) + (rho / 2) ||x - z||^2.

        Equivalently (A^T A / sigma^2 + rho I) x = A^T y / sigma^2 + rho z. deepinv's
        ``prox_l2(z, y, gamma)`` solves argmin ||Ax - y||^2 / 2 + ||x - z||^2 / (2 gamma):
        gamma = 1 / (rho sigma^2). Closed forms (FFT, elementwise) where the physics has
        them, conjugate gradients otherwise.
        """
        return self.physics.prox_l2(z, y, 1.0 / (rho * sigma**2))

    def data_step_cg(self, y, z, rho, sigma, iterations: int = 500, tol: float = 1e-10, precondition=None):
        """The data step by (preconditioned) conjugate gradients on the normal equations.

        Solves N x = b, N = A^T A / sigma^2 + rho I, b = A^T y / sigma^2 + rho z, from x = z,
        until ||b - N x|| <= tol ||b||. ``precondition(r)`` applies M^-1 for an SPD M ~ N
        (Golub & Van Loan, Alg. 11.5.1); None: plain CG.
        """
        def normal(v):
            return self.A_adjoint(self.A(v)) / sigma**2 + rho * v

        b = self.A_adjoint(y) / sigma**2 + rho * z
        return conjugate_gradients(normal, b, z.clone(), precondition, iterations, tol)

    def transfer_function(self) -> torch.Tensor | None:
        """K, the H x W complex transfer function when A = F^-1 diag(K) F on images of ``self.shape``
        (F the 2-D DFT of each channel), or None where the DFT does not diagonalise A. Frequency
        (0, 0) at index [0, 0] (``torch.fft.fft2``'s order)."""
        return None

    def svd(self):
        """A = U diag(s) V^T as fast transforms (``pnp.svd.SVD``), for operators that declare
        "svd" in ``provides``; None where this configuration has no known SVD (the default; e.g. a
        valid-boundary blur)."""
        return None

    def restrict(self, y: torch.Tensor) -> torch.Tensor:
        """Keep only the observed values of a noisy observation (masks zero the rest)."""
        return y

    def baseline(self, y: torch.Tensor) -> torch.Tensor:
        """A simple image-space estimate from y (the observation's own restoration baseline)."""
        return self.A_adjoint(y)

    def init(self, y: torch.Tensor) -> torch.Tensor:
        """The starting point of iterative solvers (defaults to the baseline)."""
        return self.baseline(y)

    # What priors may read of an operator (declared here, so nothing probes for attributes).

    @property
    def kernel(self) -> torch.Tensor | None:
        """The point-spread function (kh x kw, sum 1) of a convolution operator: what DMSP reads for
        its noise-blind ||k||^2 and replaces when kernel-blind. None (the default): no kernel."""
        return None

    @property
    def valid_border(self) -> tuple[int, int]:
        """(rows, columns) at each side of x that the observation covers only in part: half the
        kernel, kh // 2 and kw // 2, for a valid-boundary blur (the ring its ``baseline`` fills by
        replication, which DAEP's ``mask_border`` leaves to the data). Default (0, 0): none."""
        return (0, 0)

    def set_kernel(self, k: torch.Tensor) -> None:
        """Replace the kernel by ``k`` (same shape), in place. Default: a one-line PnPError, for
        operators without a kernel."""
        raise PnPError(f"operator {type(self).__name__} has no blur kernel to replace (op=blur has one)")

    def with_kernel(self, k: torch.Tensor) -> "Operator":
        """A copy of this operator with kernel ``k``; this one is left unchanged (``set_kernel``
        on the copy: a one-line PnPError where there is no kernel)."""
        import copy

        if self.kernel is None:
            self.set_kernel(k)
        other = copy.deepcopy(self)
        other.set_kernel(k)
        return other

    @staticmethod
    def require(condition: bool, message: str) -> None:
        """Raise a one-line PnPError unless ``condition``."""
        if not condition:
            raise PnPError(message)


def conjugate_gradients(normal, b, x, precondition=None, iterations: int = 500, tol: float = 1e-10, inner=None):
    """Solve N x = b for SPD ``normal`` (v -> N v) by (preconditioned) conjugate gradients from
    ``x``, until ||b - N x|| <= tol ||b|| or ``iterations`` steps. ``precondition(r)`` applies
    M^-1 for an SPD M ~ N (Golub & Van Loan, Alg. 11.5.1); None: plain CG. ``inner(u, v)`` is
    the inner product (default: sum of u * v), e.g. Parseval's for vectors kept as spectra."""
    apply_m = precondition or (lambda v: v)
    dot = inner or (lambda u, v: (u * v).sum())
    r = b - normal(x)
    s = apply_m(r)
    p, rs = s.clone(), dot(r, s)
    b_norm2 = dot(b, b)
    for _ in range(iterations):
        if dot(r, r) <= tol**2 * b_norm2:
            break
        q = normal(p)
        alpha = rs / dot(p, q)
        x, r = x + alpha * p, r - alpha * q
        s = apply_m(r)
        rs_new = dot(r, s)
        p, rs = s + (rs_new / rs) * p, rs_new
    return x
