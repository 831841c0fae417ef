"""Single-image super-resolution by an integer factor (config ``op=sr``)."""
from __future__ import annotations

import numpy as np
import torch
from deepinv.physics import Blur

from pnp.operator import Operator
from pnp.operators._bicubic import resize_matrix
from pnp.operators.blur import circular_data_step
from pnp.operators.kernels import centre_offset, check_fits, make_kernel
from pnp.svd import separable


class SuperResolution(Operator):
    """Downsampling by an integer ``scale`` in 2..8.

    - ``kernel='bicubic'`` (the usual SR benchmark): y = MATLAB ``imresize(x, 1/scale)``,
      antialiased bicubic (a = -0.5, kernel width 4 scale, symmetric boundary). Separable:
      y = R_h X R_w^T with per-axis matrices from ``_bicubic.resize_matrix``; A^T y = R_h^T Y R_w.
      Any image size: y is ceil(H / scale) x ceil(W / scale), as imresize.
      Data step in closed form: with R_h^T R_h = U_h diag(d_h) U_h^T (same for w), A^T A is
      diagonal in the U_h (x) U_w basis, so
      x = U_h [(U_h^T B U_w) / (d_h d_w^T / sigma^2 + rho)] U_w^T,  B = A^T y / sigma^2 + rho z.
    - ``kernel`` = ``gaussian`` (width ``kernel_sigma``, e.g. 1.6 for x4, DAEP's protocol) or any
      blur kernel spec (a file, e.g. kernels/bicubic_sr/bicubic_x4.npy, or ``box``/``motion``):
      y = (k * x) sampled at pixels 0, s, 2s, ... (USRNet's "classical" degradation, deepinv
      ``Downsampling``), circular boundary; the convolution is deepinv ``Blur(padding='circular')``,
      A^T = k~ * (zero-filled upsampling). Data step in closed form by FFT (Zhao et al. 2016,
      ``blur.circular_data_step``). H and W must be divisible by the scale (no cropping is done:
      a PnPError names the sizes).

    Baseline and init: bicubic upsampling of y back to H x W (MATLAB ``imresize(y, [H W])``),
    the reference row of SR tables. In kernel mode low-resolution pixel i sits on pixel s i + d,
    d the kernel's ``centre_offset``, not on the block centre s i + (s - 1) / 2 that imresize
    assumes, so the upsampling grid is shifted by (s - 1) / 2 - d pixels (as DPIR's
    ``shift_pixel`` for a centred kernel; 0 for the USRNet bicubic kernels, which have d = (s-1)/2).
    Buffers are float64 and cast to the input's dtype when used, so float64 runs are exact.
    """

    def __init__(self, shape, generator: torch.Generator | None = None, scale: int = 4,
                 kernel: str = "bicubic", kernel_size: int = 25, kernel_sigma: float = 1.6):
        super().__init__(shape, generator)
        self.require(isinstance(scale, (int, float)) and float(scale).is_integer() and 2 <= scale <= 8,
                     f"sr.scale must be an integer from 2 to 8, got {scale}")
        s = self.scale = int(scale)
        _, H, W = self.shape
        self.bicubic = kernel == "bicubic"
        if self.bicubic:
            h, w = -(-H // s), -(-W // s)
            shift_h = shift_w = 0.0
            for axis, (n, m) in {"h": (H, h), "w": (W, w)}.items():
                down = resize_matrix(n, m, 1.0 / s)
                eigenvalues, eigenvectors = np.linalg.eigh(down.T @ down)
                self.register_buffer(f"down_{axis}", torch.from_numpy(down))
                self.register_buffer(f"eigenvalues_{axis}", torch.from_numpy(eigenvalues))
                self.register_buffer(f"eigenvectors_{axis}", torch.from_numpy(eigenvectors))
        else:
            self.require(H % s == 0 and W % s == 0,
                         f"sr with kernel '{kernel}' needs H and W divisible by scale {s}, got {H}x{W}; "
                         f"crop the image to {H - H % s}x{W - W % s} (kernel=bicubic takes any size)")
            k = make_kernel(kernel, kernel_size, kernel_sigma, generator).to(torch.get_default_dtype())
            check_fits(k, self.shape)
            self.physics = Blur(filter=k[None, None], padding="circular", use_fft=True)
            h, w = H // s, W // s
            shift_h, shift_w = (((s - 1) / 2 - d) / s for d in centre_offset(k))  # in low-res pixels
        self.register_buffer("up_h", torch.from_numpy(resize_matrix(h, H, H / h, shift_h)))
        self.register_buffer("up_w", torch.from_numpy(resize_matrix(w, W, W / w, shift_w)))

    def A(self, x):
        if not self.bicubic:
            return self.physics.A(x)[..., ::self.scale, ::self.scale]
        return self._matrix("down_h", x) @ x @ self._matrix("down_w", x).T

    def A_adjoint(self, y):
        if not self.bicubic:
            upsampled = y.new_zeros(y.shape[:-2] + self.shape[1:])
            upsampled[..., ::self.scale, ::self.scale] = y
            return self.physics.A_adjoint(upsampled)
        return self._matrix("down_h", y).T @ y @ self._matrix("down_w", y)

    def data_step(self, y, z, rho, sigma):
        if not self.bicubic:
            return circular_data_step(self.physics.filter, self.A_adjoint(y), z, rho, sigma, self.scale)
        b = self.A_adjoint(y) / sigma**2 + rho * z
        Uh, Uw = self._matrix("eigenvectors_h", z), self._matrix("eigenvectors_w", z)
        d_h, d_w = self._matrix("eigenvalues_h", z), self._matrix("eigenvalues_w", z)
        return Uh @ ((Uh.T @ b @ Uw) / (d_h[:, None] * d_w[None, :] / sigma**2 + rho)) @ Uw.T

    provides = frozenset({"svd"})
    provides_when = {"svd": "op.kernel=bicubic"}

    def svd(self):
        """Bicubic: A X = R_h X R_w^T, separable (``pnp.svd.separable``: per-axis SVDs, Kronecker
        singular values s_h,i s_w,j). Kernel mode: None (not implemented)."""
        return separable(self.down_h, self.down_w) if self.bicubic else None

    def baseline(self, y):
        return self._matrix("up_h", y) @ y @ self._matrix("up_w", y).T

    def _matrix(self, name, like):
        """A float64 buffer in ``like``'s dtype (kept in float64 so float64 runs are exact)."""
        return getattr(self, name).to(like.dtype)
