"""The blind updates of DMSP (``priors/dmsp.py``, Bigdeli et al. 2017): the noise precision and
the blur kernel, each minimising the Bayes risk of the data term

    (lambda / 2) (||k * x - y||^2 + N c sigma^2 ||k||^2)

(N observed values, sigma the prior's smoothing, c = ``noise_blind_factor``):

- **noise-blind** (``noise_precision``, the paper's "NA", DMSPDeblur.m): over lambda,
  lambda = N / (||K x - y||^2 + N c sigma^2 ||k||^2); ||k||^2 = ``kernel_energy``: the squared
  taps of a blur kernel, tr(K K^T) / N (one seeded Hutchinson probe) for another operator;
- **kernel-blind** (``KernelFit``): one projected gradient step on k before each image step
  (lambda cancels in it),

      k <- P_simplex(k - (X^T (k * x - y) + N c sigma^2 k) / L),   L = ||X||^2 + N c sigma^2,

  X^T by autograd through the operator's A, ||X||^2 on zero-sum kernels by a warm-started power
  iteration, P_simplex the Euclidean projection onto {k >= 0, sum k = 1} (Duchi et al. 2008).
  The step order and step size are ours: the released code has no kernel-blind variant.

The kernel estimate lives in a copy of the operator (``Operator.with_kernel``): the operator the
problem was built with keeps its kernel.
"""
from __future__ import annotations

import torch

from pnp.seeding import generator


def project_simplex(v: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto {k >= 0, sum k = 1} (Duchi et al., ICML 2008)."""
    u = v.flatten().sort(descending=True).values
    css = u.cumsum(0) - 1
    index = torch.arange(1, u.numel() + 1, device=v.device, dtype=v.dtype)
    rho = int((u - css / index > 0).nonzero().max())
    return (v - css[rho] / (rho + 1)).clamp_min(0)


def gaussian(shape: tuple[int, int], width: float, like: torch.Tensor) -> torch.Tensor:
    """A Gaussian of standard deviation ``width`` pixels centred on a ``shape`` grid, sum 1."""
    h, w = shape
    i = torch.arange(h, dtype=like.dtype, device=like.device) - (h - 1) / 2
    j = torch.arange(w, dtype=like.dtype, device=like.device) - (w - 1) / 2
    k = torch.exp(-(i[:, None] ** 2 + j[None, :] ** 2) / (2 * width**2))
    return k / k.sum()


def observed_count(op, y: torch.Tensor) -> int:
    """N, the number of observed values of one image, counted through ``op.restrict`` (a mask's
    kept values: inpainting and demosaicing return a full-size y with zeros where nothing was
    observed)."""
    return int(op.restrict(torch.ones_like(y[:1])).count_nonzero())


def kernel_energy(op, y: torch.Tensor, n_obs: int, seed: int) -> float:
    """||k||^2 for an operator with a kernel; tr(K K^T) / N by one Hutchinson probe otherwise
    (z ~ N(0, I) seeded by ``seed``: ||K^T z||^2 / N)."""
    if op.kernel is not None:
        return float(op.kernel.pow(2).sum())
    g = generator(seed, 8)
    z = torch.randn(y[:1].shape, generator=g).to(y)
    return float(op.A_adjoint(z).pow(2).sum()) / n_obs


def noise_precision(residual: float, n_obs: int, factor: float, sigma: float, kk: float) -> float:
    """lambda = N / (||Kx - y||^2 + N c sigma^2 ||k||^2) for one image's squared residual."""
    return n_obs / (residual + n_obs * factor * sigma**2 * kk)


class KernelFit:
    """The kernel-blind alternation's kernel: ``op``, a copy of the problem's operator that holds
    the estimate, refined by ``step`` (module docstring); ``power_iterations`` per step after 20
    at the first, from a start vector seeded by ``seed``."""

    def __init__(self, op, power_iterations: int, seed: int):
        self.op = op
        self.power_iterations, self.seed = int(power_iterations), int(seed)
        self._v: torch.Tensor | None = None  # the power iteration's vector, kept between steps

    @property
    def kernel(self) -> torch.Tensor:
        return self.op.kernel

    def blur_grad(self, x: torch.Tensor, kernel: torch.Tensor, target) -> torch.Tensor:
        """X^T (kernel * x - target), the gradient in the kernel of ||kernel * x - target||^2 / 2,
        by autograd through the operator's A (which then blurs by ``kernel`` until the next call)."""
        with torch.enable_grad():
            kv = kernel.detach().requires_grad_(True)
            self.op.set_kernel(kv)
            r = self.op.A(x) - target
            return torch.autograd.grad(0.5 * r.pow(2).sum(), kv)[0]

    def step(self, x: torch.Tensor, y: torch.Tensor, c: float) -> None:
        """k <- P_simplex(k - (X^T (k * x - y) + c k) / (||X||^2 + c)), c = N c' sigma^2 of the batch."""
        k = self.op.kernel.detach().clone()
        v = self._v
        if v is None:
            v = torch.randn(k.shape, generator=torch.Generator().manual_seed(self.seed)).to(k)
        lipschitz = 0.0
        for _ in range(self.power_iterations if self._v is not None else 20):  # 20 at the start
            v = v - v.mean()
            v = v / v.norm().clamp_min(1e-30)
            w = self.blur_grad(x, v, 0.0)
            lipschitz = float((w - w.mean()).norm())
            v = w
        self._v = v.detach()
        g = self.blur_grad(x, k, y) + c * k
        self.op.set_kernel(project_simplex(k - g / (lipschitz + c)))
