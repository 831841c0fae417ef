"""Denoising: y = x (config ``op=denoise``)."""
from __future__ import annotations

import torch
from deepinv.physics import Denoising

from pnp.operator import Operator
from pnp.svd import diagonal


class Denoise(Operator):
    """A = A^T = I (deepinv ``Denoising``; its own noise model is not used).

    Data step elementwise: x = (y / sigma^2 + rho z) / (1 / sigma^2 + rho). Baseline and init: y.
    """


    def __init__(self, shape, generator: torch.Generator | None = None):
        super().__init__(shape, generator)
        self.physics = Denoising()

    def transfer_function(self) -> torch.Tensor:
        """K = 1 at every frequency (A = I)."""
        return torch.ones(self.shape[-2:], dtype=torch.complex64)

    provides = frozenset({"svd"})

    def svd(self):
        """A = I: U = V = I, s = 1."""
        return diagonal(torch.ones(1, *self.shape, dtype=torch.float64))

    def baseline(self, y):
        return y.clone()
