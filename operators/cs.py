"""Compressed sensing: y = Phi x with a dense Gaussian matrix (config ``op=cs``)."""
from __future__ import annotations

import math

import torch

from pnp.operator import Operator

MAX_VALUES = 3 * 64 * 64  # the matrix is dense: m x n doubles, n up to this


class CompressedSensing(Operator):
    """y = Phi x, Phi an m x n matrix with iid N(0, 1/m) entries drawn from the generator.

    ``channelwise`` (default): the same Phi (n = H W) measures each channel, y is B x C x m x 1;
    otherwise Phi (n = C H W) measures the whole image, y is B x 1 x m x 1. m = round(ratio n).
    A^T y = Phi^T y. (deepinv ``CompressedSensing`` is the same model; it is not reused because it
    casts y to the dtype it was built in, so a ``.double()`` operator fails, and it returns
    B x m / B x C x m observations.)
    Data step in closed form by Woodbury, with Phi Phi^T = U diag(lambda) U^T computed once:
        x = (b - Phi^T U diag(1 / (lambda + rho sigma^2)) U^T Phi b) / rho,  b = A^T y / sigma^2 + rho z.
    Baseline and init: the pseudo-inverse (minimum-norm least squares) Phi^+ y =
    Phi^T U diag(1 / lambda) U^T y. Images up to ``MAX_VALUES`` values (3 x 64 x 64) only.
    """

    def __init__(self, shape, generator: torch.Generator | None = None, ratio: float = 0.25,
                 channelwise: bool = True):
        super().__init__(shape, generator)
        C, H, W = self.shape
        self.require(C * H * W <= MAX_VALUES,
                     f"cs stores a dense Gaussian matrix and supports images of at most {MAX_VALUES} values "
                     f"(3x64x64 or 1x110x110), got {C}x{H}x{W} = {C * H * W}; crop or resize the image")
        self.require(isinstance(ratio, (int, float)) and 0 < ratio <= 1, f"cs.ratio must be in (0, 1], got {ratio}")
        self.channelwise = bool(channelwise)
        n = H * W if self.channelwise else C * H * W
        m = max(1, round(ratio * n))
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        # float64 masters, cast to the input's dtype when used (float64 runs stay exact)
        matrix = torch.randn(m, n, generator=generator, dtype=torch.float64) / math.sqrt(m)
        eigenvalues, eigenvectors = torch.linalg.eigh(matrix @ matrix.T)
        self.register_buffer("matrix", matrix)
        self.register_buffer("gram_eigenvalues", eigenvalues)
        self.register_buffer("gram_eigenvectors", eigenvectors)

    def _flat(self, x):  # B x C x H x W -> B x C' x n
        return x.reshape(x.shape[0], self.shape[0] if self.channelwise else 1, -1)

    def _image(self, v):  # B x C' x n -> B x C x H x W
        return v.reshape(v.shape[0], *self.shape)

    def _gram_solve(self, v, shift):
        """(Phi Phi^T + shift I)^-1 v for v of shape B x C' x m."""
        U = self.gram_eigenvectors.to(v.dtype)
        return ((v @ U) / (self.gram_eigenvalues.to(v.dtype) + shift)) @ U.T

    def A(self, x):
        return (self._flat(x) @ self.matrix.to(x.dtype).T)[..., None]

    def A_adjoint(self, y):
        return self._image(y[..., 0] @ self.matrix.to(y.dtype))

    def data_step(self, y, z, rho, sigma):
        Phi = self.matrix.to(z.dtype)
        b = self._flat(self.A_adjoint(y) / sigma**2 + rho * z)
        return self._image((b - self._gram_solve(b @ Phi.T, rho * sigma**2) @ Phi) / rho)

    def baseline(self, y):
        return self._image(self._gram_solve(y[..., 0], 0.0) @ self.matrix.to(y.dtype))
