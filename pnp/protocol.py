"""The evaluation protocol's border: how many pixels are cropped from each side of an image
before PSNR and SSIM are measured (``metrics.border``, or a suite's ``benchmark.metrics.border``).

Deblurring papers leave out the ring that a valid-boundary blur cannot observe, half the kernel
(Levin et al. 2009; DPIR); super-resolution papers crop ``scale`` pixels (Set5 protocol, e.g.
Bigdeli & Zwicker 2018).
"""
from __future__ import annotations

from pnp.errors import PnPError
from pnp.operators.kernels import GENERATED, make_kernel


def metric_border(spec, op: dict) -> int:
    """The border of ``spec``: an int, ``scale`` (SR), ``half_kernel`` (deblurring), ``auto``
    (``scale`` for sr, ``half_kernel`` for valid-boundary blur, else 0) or none, for the
    operator config ``op`` (a dict with its ``name`` and parameters)."""
    if spec in (None, "none"):
        return 0
    if spec == "auto":
        name = op.get("name")
        spec = "scale" if name == "sr" else "half_kernel" if name == "blur" and op.get("boundary") == "valid" else 0
    if spec == "scale":
        return int(op.get("scale", 0))
    if spec == "half_kernel":
        kernel = op.get("kernel", "gaussian")
        if kernel in GENERATED:
            return int(op.get("kernel_size", 0)) // 2
        return max(make_kernel(kernel).shape) // 2
    if isinstance(spec, int) or str(spec).isdigit():
        return int(spec)
    raise PnPError(f"benchmark.metrics.border must be an integer, 'scale' or 'half_kernel', got '{spec}'")
