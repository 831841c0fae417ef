"""The singular value decomposition A = U diag(s) V^T of an operator, as fast functions.

Spectral samplers (``ddrm``, ``snips``) work in the coordinates of the SVD: x_bar = V^T x and
y_bar = U^T y, where A acts coordinate by coordinate, y_bar_i = s_i x_bar_i. An operator that
has a known SVD returns an ``SVD`` from ``Operator.svd()``; none of the matrices is ever formed.

Conventions (those of deepinv's ``DecomposablePhysics``, whose ``mask`` is our ``s``): the
coefficients of both x and y live in one tensor shaped like ``Vt(x)`` (B x C x H x W for
every operator here). ``s`` broadcasts against it and is 0 where A removes a direction;
``Ut(y)`` puts y's coefficients there (0 where s = 0 and y has no such direction) and ``U(c)``
reads them back, so U(Ut(y)) = y and Ut(U(c)) = c wherever s > 0. V, V^T, U, U^T are real and
orthogonal: ||Vt(x)|| = ||x||, ||Ut(y)|| = ||y||.

``real_fourier`` / ``real_fourier_inverse``: the real orthonormal discrete Fourier transform
used for circular convolutions (the complex DFT with each conjugate pair of coefficients
c_k, c_-k = conj(c_k) replaced by sqrt(2) Re c_k and sqrt(2) Im c_k; the self-conjugate
frequencies keep Re c_k). deepinv's ``BlurFFT`` decomposes with the complex DFT instead; real
coefficients keep the samplers' Gaussian noise real, without its 1 / sqrt(2) correction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SVD:
    """A = U diag(s) V^T; ``s`` in the dtype and device of the operator's buffers (cast it with
    ``.to(x)``), the transforms follow their input's dtype."""

    s: torch.Tensor
    Vt: Transform
    V: Transform
    Ut: Transform
    U: Transform


def identity(t: torch.Tensor) -> torch.Tensor:
    return t


def diagonal(s: torch.Tensor) -> SVD:
    """A = diag(s) (denoising, inpainting, demosaicing): U = V = I."""
    return SVD(s=s, Vt=identity, V=identity, Ut=identity, U=identity)


def _halves(size: tuple[int, int], device) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, self_conjugate) masks over the H x W frequency grid: ``first`` marks one member of
    each conjugate pair (k, -k), ``self_conjugate`` the frequencies with k = -k."""
    H, W = size
    rows = torch.arange(H, device=device)[:, None]
    cols = torch.arange(W, device=device)[None, :]
    index = rows * W + cols
    partner = ((-rows) % H) * W + (-cols) % W
    return index < partner, index == partner


def _negated(c: torch.Tensor) -> torch.Tensor:
    """c_-k at every frequency k (indices modulo the size) of the last two dimensions."""
    return torch.roll(torch.flip(c, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))


def real_fourier(x: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
    """R(conj(phase) . F x): the real orthonormal DFT of the last two dimensions (module
    docstring), after multiplying the unitary spectrum by conj(``phase``) (a Hermitian-symmetric
    spectrum of unit modulus, or None)."""
    c = torch.fft.fft2(x, norm="ortho")
    if phase is not None:
        c = c * phase.conj()
    first, self_conjugate = _halves(x.shape[-2:], x.device)
    root2 = math.sqrt(2.0)
    return torch.where(first, root2 * c.real, torch.where(self_conjugate, c.real, -root2 * c.imag))


def real_fourier_inverse(r: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
    """The inverse of ``real_fourier``: F^-1(phase . R^-1 r)."""
    first, self_conjugate = _halves(r.shape[-2:], r.device)
    partner = _negated(r)
    root2 = math.sqrt(2.0)
    c = torch.where(first, torch.complex(r, partner) / root2,
                    torch.where(self_conjugate, torch.complex(r, torch.zeros_like(r)),
                                torch.complex(partner, -r) / root2))
    if phase is not None:
        c = c * phase
    return torch.fft.ifft2(c, norm="ortho").real


def circular_convolution(spectrum: torch.Tensor) -> SVD:
    """A = F^-1 diag(K) F, K = ``spectrum`` (the H x W DFT of a real kernel, Hermitian-symmetric).

    With K = |K| e^(i phi): A = [F^-1 diag(e^(i phi)) R^-1] diag(|K|) [R F], so V^T = R F,
    U^T = R diag(e^(-i phi)) F and s = |K| (|K_k| = |K_-k|, so diag(|K|) commutes with R);
    phi = 0 where K = 0."""
    modulus = spectrum.abs()
    phase = torch.where(modulus > 0, spectrum / modulus.clamp_min(torch.finfo(modulus.dtype).tiny),
                        torch.ones_like(spectrum))

    def at(like):
        return phase.to(torch.complex128 if like.dtype == torch.float64 else torch.complex64)

    return SVD(
        s=modulus,
        Vt=lambda x: real_fourier(x),
        V=lambda c: real_fourier_inverse(c),
        Ut=lambda y: real_fourier(y, at(y)),
        U=lambda c: real_fourier_inverse(c, at(c)),
    )


def separable(down_h: torch.Tensor, down_w: torch.Tensor) -> SVD:
    """A x = D_h X D_w^T for h x H and w x W matrices D (h <= H, w <= W), e.g. bicubic downsampling.

    With D = U_a diag(s_a) V_a^T per axis (``torch.linalg.svd``, V_a complete: H x H), A = (U_h (x)
    U_w) diag(s_h (x) s_w) (V_h (x) V_w)^T (Kronecker). Coefficients are H x W: V^T x = V_h^T X V_w,
    s_ij = s_h,i s_w,j with s_a padded by zeros to H (W); y's coefficients U_h^T Y U_w fill the top-left
    h x w block."""
    (U_h, s_h, Vt_h), (U_w, s_w, Vt_w) = (torch.linalg.svd(d, full_matrices=True) for d in (down_h, down_w))
    H, W = Vt_h.shape[0], Vt_w.shape[0]
    h, w = U_h.shape[0], U_w.shape[0]
    s = torch.zeros(H, W, dtype=down_h.dtype, device=down_h.device)
    s[: s_h.numel(), : s_w.numel()] = s_h[:, None] * s_w[None, :]

    def cast(m, like):
        return m.to(like.dtype)

    def Ut(y):
        c = cast(U_h, y).T @ y @ cast(U_w, y)
        return torch.nn.functional.pad(c, (0, W - w, 0, H - h))

    return SVD(
        s=s,
        Vt=lambda x: cast(Vt_h, x) @ x @ cast(Vt_w, x).T,
        V=lambda c: cast(Vt_h, c).T @ c @ cast(Vt_w, c),
        Ut=Ut,
        U=lambda c: cast(U_h, c) @ c[..., :h, :w] @ cast(U_w, c).T,
    )
