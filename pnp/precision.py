"""Which arithmetic the networks run in: ``precision: auto | fp32 | bf16``.

``bf16`` is bfloat16 autocast with channels_last tensors. It is several times faster than fp32
where the hardware has native bfloat16 arithmetic (CUDA devices that support it; CPUs with AMX
or AVX512-BF16, read from the CPU flags) and many times slower where it is emulated (a CPU with
AVX2 only: one colour denoiser call at 256x256 took 11.0 s in bf16 against 0.94 s in fp32).
``auto`` picks bf16 where it is native, fp32 elsewhere.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import torch

from pnp.errors import PnPError

PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device) -> bool:
    """Whether ``device`` runs bfloat16 natively (and so faster than float32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return any(flag in cpu_flags() for flag in CPU_BF16_FLAGS)


_WARNED: set = set()


def resolve_precision(precision: str, device, key: str = "prior.denoiser.precision") -> str:
    """``auto`` -> bf16 where native, else fp32; ``bf16`` on hardware without it runs, with one
    warning line; anything else is a one-line PnPError listing the choices."""
    if precision not in PRECISIONS:
        raise PnPError(f"{key} must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    native = native_bf16(device)
    if precision == "auto":
        return "bf16" if native else "fp32"
    if precision == "bf16" and not native and str(device) not in _WARNED:
        _WARNED.add(str(device))
        print(f"warning: {key}=bf16 on a {torch.device(device).type} without native bfloat16 will be slow; "
              f"auto or fp32 is faster here", file=sys.stderr)
    return precision
