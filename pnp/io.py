"""Image and result files: read PNG/JPEG/BMP/TIFF (gray or colour, 8 or 16 bit), write atomically.

Every file is written to a temporary name in its own folder, flushed to disk, then renamed
(``os.replace``), so a reader never sees a half-written file.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from pnp.errors import PnPError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def default_image() -> Path:
    """The built-in image (NASA's astronaut Eileen Collins, public domain, via scikit-image; 256x256)."""
    return Path(str(files("pnp.data") / "astronaut.png"))


def list_images(path: str | os.PathLike) -> list[Path]:
    """The image files of a folder (sorted), or the single file ``path``."""
    path = Path(path)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise PnPError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {path}")
        return images
    if not path.exists():
        raise PnPError(f"image not found: {path}")
    return [path]


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image as a 1 x C x H x W float32 tensor in [0, 1] (C = 1 gray, 3 colour)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                arr = np.asarray(im, dtype=np.float64)
                arr = arr / (65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0)
            elif mode in ("1", "L", "LA"):
                arr = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
            elif mode in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
                arr = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
            else:
                raise PnPError(f"unsupported image mode '{mode}' in {path}; use 8/16-bit gray or RGB")
    except FileNotFoundError:
        raise PnPError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise PnPError(f"cannot read image {path}: {err}") from None
    t = torch.from_numpy(np.ascontiguousarray(arr)).float()
    t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
    return t.clamp(0, 1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """C x H x W (or 1 x C x H x W) tensor in [0, 1] -> H x W (x 3) uint8 array."""
    x = x.detach().float().cpu()
    x = x[0] if x.dim() == 4 else x
    arr = (x.clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file beside ``path``; on success fsync it and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_image(x: torch.Tensor | np.ndarray, path: str | os.PathLike) -> None:
    """Write a tensor in [0, 1] (or a uint8 array) as an 8-bit PNG, atomically."""
    arr = to_uint8(x) if isinstance(x, torch.Tensor) else x
    with atomic_write(path) as f:
        Image.fromarray(arr).save(f, format="PNG")


def save_json(obj, path: str | os.PathLike) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def save_csv(rows: list[dict], path: str | os.PathLike) -> None:
    """Write dict rows as CSV (columns from the first row, union of keys in order)."""
    import csv

    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with atomic_write(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
