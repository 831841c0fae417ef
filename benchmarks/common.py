"""What the benchmark scripts share: the machine they ran on and the images they run on."""
from __future__ import annotations

import platform
from pathlib import Path

import torch

from pnp.api import restore
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


def restore_each(images: list[torch.Tensor], seed: int | None = None, **problem) -> tuple[list[dict], float]:
    """``pnp.api.restore`` of each image (seed: ``seed``, or the image's index) with the same
    problem and method; returns each image's metrics and the mean seconds per image that the
    solver took (``metrics["seconds"]``: without composing the config or loading the network)."""
    rows = [restore(x, seed=i if seed is None else seed, **problem)[1] for i, x in enumerate(images)]
    return rows, sum(m["seconds"] for m in rows) / len(rows)


def mean_of(rows: list[dict], key: str) -> float:
    """The mean of one metric over the rows."""
    return sum(m[key] for m in rows) / len(rows)
