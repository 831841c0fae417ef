"""Blur kernels: loaded from files or generated, as point-spread functions summing to 1.

Kernels are PSFs in MATLAB orientation (row = first index): the blur is the convolution
``y = k * x`` (MATLAB ``conv2``/``imfilter(..., 'conv')``, ``scipy.ndimage.convolve``), not a
correlation. deepinv's ``Blur``/``BlurFFT``/``Downsampling`` convolve (they flip the kernel
before ``torch.nn.functional.conv2d``), so a kernel goes to them as it is.

A kernel spec is either a generator name (``gaussian``, ``box``, ``motion``) or a file:

- ``.npy``: a 2-D array.
- ``.mat``: ``path.mat`` (the first 2-D numeric array; a cell array gives its first element),
  ``path.mat:key`` or ``path.mat:key:index`` (cell arrays, index 1-based as MATLAB's
  ``kernels{index}``). MATLAB v5 files are read with scipy, v7.3 (HDF5) files with h5py,
  transposed back into MATLAB orientation (HDF5 stores MATLAB arrays column-major).
- ``.png`` (or any image PIL reads): converted to grayscale.
"""
from __future__ import annotations

import os
import re
import sys

import numpy as np
import torch

from pnp.errors import PnPError

GENERATED = ("gaussian", "box", "motion")
_MAT_SPEC = re.compile(r"^(?P<path>.+?\.mat)(?::(?P<key>[^:]+))?(?::(?P<index>-?\d+))?$", re.IGNORECASE)


def make_kernel(kernel: str, kernel_size: int = 25, kernel_sigma: float = 1.6,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """The kernel named by ``kernel`` as a float64 tensor (h, w) that sums to 1."""
    if not isinstance(kernel, (str, os.PathLike)):
        raise PnPError(f"kernel must be a file path or one of {', '.join(GENERATED)}, got {kernel!r}")
    kernel = str(kernel)
    if kernel in GENERATED:
        if not (isinstance(kernel_size, (int, float)) and kernel_size >= 1 and float(kernel_size).is_integer()):
            raise PnPError(f"kernel_size must be a positive integer, got {kernel_size}")
        size = int(kernel_size)
        if kernel == "gaussian":
            if not (isinstance(kernel_sigma, (int, float)) and kernel_sigma > 0):
                raise PnPError(f"kernel_sigma must be > 0 for a gaussian kernel, got {kernel_sigma}")
            k = gaussian_kernel(size, float(kernel_sigma))
        elif kernel == "box":
            k = np.ones((size, size))
        else:
            k = motion_kernel(size, generator)
        return torch.from_numpy(normalized(k, kernel))
    return torch.from_numpy(load_kernel(kernel))


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """exp(-(u^2 + v^2) / (2 sigma^2)) on a size x size grid centred at (size - 1) / 2
    (MATLAB ``fspecial('gaussian', size, sigma)``)."""
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-t**2 / (2 * sigma**2))
    return np.outer(g, g)


def motion_kernel(size: int, generator: torch.Generator | None) -> np.ndarray:
    """A random camera-shake trajectory (deepinv ``MotionBlurGenerator``: Gaussian-process
    trajectory, Schuler et al. 2015), drawn with ``generator``."""
    from deepinv.physics.generator import MotionBlurGenerator

    if generator is None:
        generator = torch.Generator().manual_seed(0)
    psf = MotionBlurGenerator((size, size), rng=generator, dtype=torch.float64).step()["filter"]
    return psf[0, 0].cpu().numpy()


def load_kernel(spec: str) -> np.ndarray:
    """Read a kernel file (see the module docstring) into a float64 array summing to 1."""
    match = _MAT_SPEC.match(spec)
    path, key, index = (match["path"], match["key"], match["index"]) if match else (spec, None, None)
    path = os.path.expandvars(os.path.expanduser(path))
    if not os.path.isfile(path):
        names = ", ".join(GENERATED)
        raise PnPError(f"kernel '{spec}' is neither an existing file nor one of {names}")
    try:
        if path.lower().endswith(".npy"):
            k = np.load(path, allow_pickle=False)
        elif path.lower().endswith(".mat"):
            k = _pick(_read_mat(path), key, None if index is None else int(index), path)
        else:
            from PIL import Image

            with Image.open(path) as image:
                if image.mode not in ("L", "I", "I;16", "F"):
                    image = image.convert("L")
                k = np.asarray(image)
    except PnPError:
        raise
    except Exception as err:  # unreadable file: one line, not a traceback
        raise PnPError(f"could not read kernel file {path}: {type(err).__name__}: {err}") from None
    return normalized(k, spec)


def normalized(k, source: str) -> np.ndarray:
    """``k / sum(k)`` after checking it is a finite 2-D array with a positive sum."""
    k = np.asarray(k)
    if k.dtype == object or not np.issubdtype(k.dtype, np.number) or np.iscomplexobj(k):
        raise PnPError(f"kernel from {source} is not a real numeric array")
    k = np.array(k, dtype=np.float64)
    if k.ndim != 2:
        raise PnPError(f"kernel from {source} must be 2-D, got shape {k.shape}")
    if not np.isfinite(k).all():
        raise PnPError(f"kernel from {source} contains NaN or inf")
    total = k.sum()
    if not total > 0:
        raise PnPError(f"kernel from {source} sums to {total:.3g}; a blur kernel must have a positive sum")
    k = k / total
    _warn_if_signed(k, source)
    return k


_warned: set[str] = set()


def _warn_if_signed(k: np.ndarray, source: str) -> None:
    """One line on stderr (once per kernel) when a kernel has negative entries: accepted, since
    some deconvolution kernels are signed, but rarely what a blur's point-spread function is."""
    low = float(k.min())
    if low < -1e-9 * float(np.abs(k).max()) and str(source) not in _warned:
        _warned.add(str(source))
        count = int((k < 0).sum())
        print(f"warning: kernel from {source} has {count} negative entries (min {low:.3g} after normalising "
              f"to sum 1); used as given", file=sys.stderr, flush=True)


def _read_mat(path: str) -> dict:
    """Variables of a .mat file in MATLAB orientation; cell arrays as numpy object arrays."""
    import h5py

    if not h5py.is_hdf5(path):
        import scipy.io

        return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    with h5py.File(path, "r") as f:  # MATLAB v7.3
        def value(dataset):
            data = dataset[()]
            if h5py.check_dtype(ref=dataset.dtype) is not None:  # a cell array of references
                cells = np.empty(data.shape, dtype=object)
                for i, ref in np.ndenumerate(data):
                    cells[i] = value(f[ref])
                data = cells
            return data.T if isinstance(data, np.ndarray) else data

        return {k: value(v) for k, v in f.items() if not k.startswith("#") and isinstance(v, h5py.Dataset)}


def _is_kernel_array(v) -> bool:
    return (isinstance(v, np.ndarray) and v.dtype != object and v.ndim == 2 and v.size > 1
            and np.issubdtype(v.dtype, np.number) and not np.iscomplexobj(v))


def _first_kernel(v):
    """The first 2-D numeric array in ``v``, looking into cell arrays (MATLAB linear order)."""
    if _is_kernel_array(v):
        return v
    if isinstance(v, np.ndarray) and v.dtype == object:
        for cell in v.flatten(order="F"):
            found = _first_kernel(cell)
            if found is not None:
                return found
    return None


def _pick(variables: dict, key: str | None, index: int | None, path: str) -> np.ndarray:
    if key is None:
        candidates = list(variables.values())
    elif key in variables:
        candidates = [variables[key]]
    else:
        raise PnPError(f"no variable '{key}' in {path}; it has: {', '.join(variables) or 'none'}")
    if index is not None:
        cell = candidates[0]
        if not (isinstance(cell, np.ndarray) and cell.dtype == object):
            raise PnPError(f"'{key}' in {path} is not a cell array; drop the ':{index}'")
        if not 1 <= index <= cell.size:
            raise PnPError(f"cell index {index} out of range 1..{cell.size} for '{key}' in {path} (1-based, as MATLAB)")
        candidates = [cell.flatten(order="F")[index - 1]]
    for v in candidates:
        found = _first_kernel(v)
        if found is not None:
            return found
    raise PnPError(f"no 2-D numeric array found in {path}" + (f" under '{key}'" if key else ""))


def check_fits(kernel: torch.Tensor, shape: tuple[int, int, int]) -> None:
    """PnPError unless the kernel fits inside the image (C, H, W)."""
    kh, kw = kernel.shape[-2:]
    if kh > shape[1] or kw > shape[2]:
        raise PnPError(f"kernel {kh}x{kw} is larger than the image {shape[1]}x{shape[2]}")



def centre_offset(kernel: torch.Tensor) -> tuple[float, float]:
    """(rows, columns) from the kernel's centre of mass to its centre pixel (h // 2, w // 2).

    k * x at pixel n averages x around n + offset: 0 for a centred kernel, (s - 1) / 2 for the
    USRNet/DPIR bicubic x s kernels, which build imresize's half-block shift into the kernel.
    """
    k = kernel / kernel.sum()
    return tuple(float(n // 2 - (k.sum(dim=other) * torch.arange(n, dtype=k.dtype)).sum())
                 for n, other in ((k.shape[0], 1), (k.shape[1], 0)))
