"""What the benchmark scripts share: the machine they ran on and the images they run on."""
from __future__ import annotations

import platform
from pathlib import Path

import torch

from pnp.io import load_image
from pnp.precision import native_bf16

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine_line(threads: int = 1) -> str:
    """One line naming the hardware and software a benchmark's figures come from."""
    return (f"CPU: {cpu_name()}; native bf16: {native_bf16('cpu')}; {threads} thread(s); "
            f"torch {torch.__version__}")


def centre_crops(folder: Path, count: int, side: int, start: int = 0, step: int = 1) -> list[torch.Tensor]:
    """Centre side x side crops of images ``start``, ``start + step``, ... of ``folder`` (sorted by name)."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".bmp", ".jpg", ".tif", ".tiff"})
    out = []
    for p in paths[start::step][:count]:
        x = load_image(p)
        h, w = x.shape[-2:]
        top, left = (h - side) // 2, (w - side) // 2
        out.append(x[..., top:top + side, left:left + side])
    return out
