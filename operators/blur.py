"""Deblurring: y = k * x, a convolution with a point-spread function k (config ``op=blur``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from deepinv.physics import Blur as _DeepinvBlur
from deepinv.physics.functional import filter_fft

from pnp.operator import Operator, conjugate_gradients
from pnp.operators.kernels import check_fits, make_kernel
from pnp.svd import circular_convolution

BOUNDARIES = ("valid", "circular")


class Blur(Operator):
    """y = k * x, the same kernel on every channel (true convolution, MATLAB orientation).

    - ``boundary='valid'`` (the DAEP/DMSP papers' choice), MATLAB ``conv2(x, k, 'valid')``:
      y is (H - kh + 1) x (W - kw + 1), no boundary assumption. (The authors' demos blur by
      ``convn(x, rot90(k, 2), 'valid')``, a correlation with k: the same as this operator with
      the kernel rotated by 180 degrees.) A^T y = k~ *_full y, the full
      correlation (``conv2(y, rot90(k, 2), 'full')``). Computed by FFTs of the image size:
      the valid part of a circular convolution never wraps, so A = P C with C the circular
      convolution by k (kernel at the origin) and P the crop of the first kh - 1 rows and
      kw - 1 columns; A^T = C^T P^T (zero-fill, then circular correlation). Same result as
      deepinv's direct ``Blur(padding='valid')`` (kept as ``self.physics``); measured at
      256x256 with a 27x27 kernel, 1 thread: A 0.49 vs 15.5 ms, A^T 0.52 vs 63 ms.
      Data step: conjugate gradients on (A^T A / sigma^2 + rho I) x = A^T y / sigma^2 + rho z
      to the relative residual ``cg_tol``, preconditioned by the circular-boundary system,
      which FFTs invert exactly. The iterates are kept as spectra (``valid_data_step``), where
      that preconditioner is diagonal and A^T A = C^T P^T P C costs two FFTs: two per iteration
      instead of six. Measured on Set12 01 with Levin kernel 4, noise 7.65, rho 30 / 300,
      1 thread: 4-7 iterations to 1e-4, within 60 / 83 dB PSNR of an exact solve, 6.0 / 3.9 ms
      per step (8.4 / 5.3 ms with the iterates as images). CG starts from the solver's previous
      solution where it passes one (``warm_start``), else from z: RED-ADMM on Set12 01, Levin 1,
      noise 7.65, 200 iterations: 2.1 instead of 6.0 operator products per step.
      Baseline and init: y padded back to H x W by replicating its border pixels.
    - ``boundary='circular'`` (DPIR/USRNet, ``scipy.ndimage.convolve(x, k, mode='wrap')``):
      A = F^-1 diag(F k) F, A^T = F^-1 diag(conj(F k)) F; deepinv ``Blur(padding='circular',
      use_fft=True)``. Data step in closed form (``circular_data_step`` with factor 1):
      x = F^-1[(conj(Fk) Fy / sigma^2 + rho Fz) / (|Fk|^2 / sigma^2 + rho)]. Baseline and init: y.

    ``kernel``: a file (.npy, .mat[:key[:index]], .png) or ``gaussian`` (width ``kernel_sigma``),
    ``box`` or ``motion`` (random trajectory from ``generator``), ``kernel_size`` square.
    """


    def __init__(self, shape, generator: torch.Generator | None = None, kernel: str = "gaussian",
                 kernel_size: int = 25, kernel_sigma: float = 1.6, boundary: str = "valid",
                 cg_tol: float = 1e-4):
        super().__init__(shape, generator)
        self.require(0 < cg_tol < 1, f"blur.cg_tol must be in (0, 1), got {cg_tol}")
        self.cg_tol = float(cg_tol)
        self.require(boundary in BOUNDARIES, f"blur.boundary must be one of {', '.join(BOUNDARIES)}, got '{boundary}'")
        k = make_kernel(kernel, kernel_size, kernel_sigma, generator).to(torch.get_default_dtype())
        check_fits(k, self.shape)
        self.boundary = boundary
        self.kernel_shape = tuple(k.shape)
        self.physics = _DeepinvBlur(filter=k[None, None], padding=boundary, use_fft=boundary == "circular")

    @property
    def kernel(self) -> torch.Tensor:
        return self.physics.filter[0, 0]

    @property
    def valid_border(self) -> tuple[int, int]:
        """(kh // 2, kw // 2) for the valid boundary, (0, 0) for the circular one."""
        return tuple(n // 2 for n in self.kernel_shape) if self.boundary == "valid" else (0, 0)

    def set_kernel(self, k: torch.Tensor) -> None:
        """Blur by ``k`` (kh x kw, this operator's kernel size) from now on; differentiable in ``k``
        (kernel-blind DMSP takes the kernel's gradient through A)."""
        self.require(tuple(k.shape) == self.kernel_shape,
                     f"a replacement kernel must be {self.kernel_shape[0]}x{self.kernel_shape[1]} like the "
                     f"operator's, got {'x'.join(map(str, k.shape))}")
        self.physics.update_parameters(filter=k[None, None])

    def spectrum(self, size, like: torch.Tensor) -> torch.Tensor:
        """rfft2 of the kernel zero-padded to ``size`` with its first tap at the origin, in the
        dtype and device of ``like``; cached until the kernel or the size changes.

        The cache holds the filter tensor itself (compared by identity and version counter), not
        its address: a replaced filter's memory can be reused by the next one, so an address
        alone could match a kernel the spectrum was not computed from."""
        f = self.physics.filter
        key = (f._version, tuple(size), like.dtype, like.device)
        if getattr(self, "_spectrum_filter", None) is not f or self._spectrum_key != key:
            self._spectrum = torch.fft.rfft2(f[0, 0].to(like), s=tuple(size))
            self._spectrum_filter, self._spectrum_key = f, key
        return self._spectrum

    def A(self, x):
        if self.boundary != "valid":
            return self.physics.A(x)
        return convolve_valid(x, self.kernel_shape, self.spectrum(x.shape[-2:], x))

    def A_adjoint(self, y):
        if self.boundary != "valid":
            return self.physics.A_adjoint(y)
        kh, kw = self.kernel_shape
        return correlate_full(y, self.kernel_shape, self.spectrum((y.shape[-2] + kh - 1, y.shape[-1] + kw - 1), y))

    warm_start = True
    provides = frozenset({"svd"})
    provides_when = {"svd": "op.boundary=circular"}

    def svd(self):
        """Circular boundary: A = F^-1 diag(K) F, K the DFT of the kernel as the physics applies it
        (``pnp.svd.circular_convolution``); valid boundary: None (A = P C has no SVD in closed form)."""
        if self.boundary != "circular":
            return None
        return circular_convolution(filter_fft(self.physics.filter.to(torch.float64), self.shape[1:],
                                               real_fft=False, dims=(-2, -1))[0, 0])

    def data_step(self, y, z, rho, sigma, start=None):
        if self.boundary == "circular":
            return circular_data_step(self.physics.filter, self.A_adjoint(y), z, rho, sigma)
        # float64 (tests, references) solves to 1e-10; float32 to cg_tol
        tol = 1e-10 if y.dtype == torch.float64 else self.cg_tol
        return valid_data_step(y, z, rho, sigma, self.kernel_shape, self.spectrum(z.shape[-2:], z), tol,
                               start=start)

    def transfer_function(self) -> torch.Tensor | None:
        """F k, the kernel's DFT of the image size (first tap at the origin), for ``boundary='circular'``;
        None for ``valid`` (a crop of a convolution is not diagonal in Fourier)."""
        if self.boundary != "circular":
            return None
        return filter_fft(self.physics.filter, self.shape[-2:], real_fft=False, dims=(-2, -1))[0, 0]

    def baseline(self, y: torch.Tensor) -> torch.Tensor:
        if self.boundary == "circular":
            return y.clone()
        kh, kw = self.kernel_shape  # output pixel i sits over image pixel i + (kh - 1) // 2
        return F.pad(y, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2), mode="replicate")


def convolve_valid(x: torch.Tensor, shape: tuple[int, int], spectrum: torch.Tensor) -> torch.Tensor:
    """k *valid x (MATLAB ``conv2(x, k, 'valid')``) for x (..., H, W): (..., H - kh + 1, W - kw + 1);
    ``spectrum`` = rfft2 of the kh x kw kernel ``shape`` zero-padded to H x W. The valid part of
    the circular convolution, which never wraps."""
    kh, kw = shape
    size = x.shape[-2:]
    return torch.fft.irfft2(torch.fft.rfft2(x) * spectrum, s=size)[..., kh - 1 :, kw - 1 :]


def correlate_full(y: torch.Tensor, shape: tuple[int, int], spectrum: torch.Tensor) -> torch.Tensor:
    """The adjoint of ``convolve_valid``: zero-fill y to (h + kh - 1) x (w + kw - 1), correlate with
    k (``conv2(y, rot90(k, 2), 'full')``); ``spectrum`` = rfft2 of k zero-padded to that size."""
    size = (y.shape[-2] + shape[0] - 1, y.shape[-1] + shape[1] - 1)
    return torch.fft.irfft2(torch.fft.rfft2(zero_fill(y, shape)) * spectrum.conj(), s=size)


def zero_fill(y: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """P^T y: the valid observation y put back where ``convolve_valid`` took it from (rows kh - 1
    and on, columns kw - 1 and on) in an otherwise zero (h + kh - 1) x (w + kw - 1) image."""
    kh, kw = shape
    return F.pad(y, (kw - 1, 0, kh - 1, 0))


def valid_data_step(y, z, rho, sigma, shape, spectrum, tol: float, iterations: int = 500, start=None):
    """argmin_x ||k *valid x - y||^2 / (2 sigma^2) + (rho / 2) ||x - z||^2 by preconditioned CG
    with the iterates kept as spectra (rfft2 of H x W images; ``spectrum`` = rfft2 of the kernel
    ``shape`` zero-padded to H x W), from ``start`` (default: z).

    With C the circular convolution by k and P the crop to its valid part (``convolve_valid``),
    the normal matrix N = C^T P^T P C / sigma^2 + rho I acts on a spectrum v as
    conj(K) F[m . F^-1(K v)] / sigma^2 + rho v, m the 0/1 mask of the valid part: two FFTs. The
    circular system C^T C / sigma^2 + rho I, which differs from N only near the border, is the
    preconditioner, diag(|K|^2 / sigma^2 + rho) there. Inner products by Parseval over the half
    spectrum (the columns that stand for two conjugate ones count twice)."""
    kh, kw = shape
    size = z.shape[-2:]
    mask = torch.zeros(size, dtype=z.dtype, device=z.device)
    mask[kh - 1:, kw - 1:] = 1
    weight = torch.full((size[-1] // 2 + 1,), 2.0, dtype=z.dtype, device=z.device)
    weight[0] = 1.0
    if size[-1] % 2 == 0:
        weight[-1] = 1.0
    adjoint = spectrum.conj() / sigma**2  # conj(K) / sigma^2
    denom = (adjoint * spectrum).real + rho

    def normal(v):
        return adjoint * torch.fft.rfft2(mask * torch.fft.irfft2(spectrum * v, s=size)) + rho * v

    def inner(u, v):
        return (weight * (u.conj() * v).real).sum()

    z_hat = torch.fft.rfft2(z)
    b = adjoint * torch.fft.rfft2(zero_fill(y, shape)) + rho * z_hat
    x0 = z_hat if start is None else torch.fft.rfft2(start)
    x = conjugate_gradients(normal, b, x0, lambda r: r / denom, iterations, tol, inner)
    return torch.fft.irfft2(x, s=size)


def circular_data_step(filter, adjoint_y, z, rho, sigma, factor: int = 1):
    """argmin_x ||S (k * x) - y||^2 / (2 sigma^2) + (rho / 2) ||x - z||^2 in closed form.

    k * x is a circular convolution, S keeps pixels 0, s, 2s, ... (s = ``factor``; 1: plain
    deblurring); ``adjoint_y`` = A^T y. With r = A^T y + alpha z, alpha = rho sigma^2, Woodbury
    and the aliasing structure of S^T S in Fourier give (Zhao et al. 2016, as in deepinv's
    ``Downsampling.prox_l2``):
        x = (r - F^-1[conj(Fk) . tile(mean_s(Fk Fr) / (mean_s(|Fk|^2) + alpha))]) / alpha,
    mean_s averaging the s x s aliased blocks of the spectrum. The kernel's spectrum is computed
    here, in the current dtype (deepinv keeps it as a complex buffer, which ``.double()`` leaves
    in complex64 and ``.to(torch.float64)`` casts to real).
    """
    H, W = z.shape[-2:]
    s = int(factor)
    spectrum = filter_fft(filter, (H, W), real_fft=False, dims=(-2, -1))
    alpha = rho * sigma**2
    r = adjoint_y + alpha * z

    def block_mean(a):  # (..., H, W) -> (..., H/s, W/s): mean over the s x s aliased copies
        return a.reshape(*a.shape[:-2], s, H // s, s, W // s).mean(dim=(-4, -2))

    ratio = block_mean(spectrum * torch.fft.fft2(r)) / (block_mean(spectrum.abs() ** 2) + alpha)
    correction = torch.fft.ifft2(spectrum.conj() * ratio.repeat(1, 1, s, s)).real
    return (r - correction) / alpha
