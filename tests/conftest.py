"""Shared fixtures: small test images, the shared data folder, a CLI runner, one torch thread."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PNP_SHARED", REPO.parent / "shared")) / "data"


def smooth_image(size: int = 32, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth random image with a few edges, uint8, H x W (x 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    planes = []
    for c in range(channels):
        a, b, phase = rng.uniform(1, 4, 3)
        plane = 0.5 + 0.3 * np.sin(2 * np.pi * (a * xx + b * yy) + phase)
        plane += 0.2 * ((xx > 0.3 + 0.1 * c) & (yy > 0.5))
        planes.append(plane)
    arr = np.clip(np.stack(planes, -1), 0, 1)
    arr = (arr * 255).round().astype(np.uint8)
    return arr[..., 0] if channels == 1 else arr


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    their tensors are small, and extra threads only contend with other jobs on a shared machine
    (two threads on a busy 2-core machine ran ~100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def color_png(tmp_path) -> Path:
    path = tmp_path / "color.png"
    Image.fromarray(smooth_image(32, 3)).save(path)
    return path


@pytest.fixture
def gray_png(tmp_path) -> Path:
    path = tmp_path / "gray.png"
    Image.fromarray(smooth_image(32, 1)).save(path)
    return path


def run_cli(*args: str, cwd: Path, env: dict | None = None, module: str = "pnp") -> subprocess.CompletedProcess:
    """Run ``python -m pnp ARGS`` in ``cwd`` (quiet progress), return the completed process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=600)
