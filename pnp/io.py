"""Image and result files: read PNG/JPEG/BMP/TIFF (gray or colour, 8 or 16 bit), write atomically.

Every file is written to a temporary name in its own folder, flushed to disk, then renamed
(``os.replace``), so a reader never sees a half-written file.

A folder of images is checked as a whole before anything is solved: every unreadable file is
named in one error, or, inside ``skipping_unreadable()`` (``skip_unreadable=true``), left out and
recorded. Also here: the lock that keeps two processes from writing into one folder at once,
and the clean-up of a run folder that received no work.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from pnp.errors import PnPError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
MODES_16 = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16/32-bit integer gray
MODES_GRAY = ("1", "L", "LA")
MODES_COLOUR = ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV")


def _unsupported(mode: str, path) -> str:
    return f"unsupported image mode '{mode}' in {path}; use 8/16-bit gray or RGB"


def default_image() -> Path:
    """The built-in image (NASA's astronaut Eileen Collins, public domain, via scikit-image; 256x256)."""
    return Path(str(files("pnp.data") / "astronaut.png"))


# Unreadable files left out of folders while skipping is on: {path: reason}; None = refuse them.
_skipped: dict[str, str] | None = None


@contextmanager
def skipping_unreadable(enabled: bool = True):
    """Within this block, ``list_images`` leaves unreadable files of a folder out (and records
    them: ``skipped_images()``) instead of refusing the folder."""
    global _skipped
    previous, _skipped = _skipped, ({} if enabled else None)
    try:
        yield
    finally:
        _skipped = previous


def skipped_images() -> dict[str, str]:
    """{file: reason} of the unreadable files left out so far in ``skipping_unreadable()``."""
    return dict(_skipped or {})


def unreadable_reason(path: Path) -> str | None:
    """Why ``path`` cannot be read as an image (None: it can), from its header and structure:
    PIL's ``verify`` (PNG chunk checksums, truncation) and, for JPEG, the end-of-image marker."""
    try:
        with Image.open(path) as im:
            fmt, mode = im.format, im.mode
            im.verify()
        if mode not in MODES_16 + MODES_GRAY + MODES_COLOUR:
            return f"unsupported image mode '{mode}'"
        if fmt == "JPEG":
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - 1024))
                tail = f.read()
            if b"\xff\xd9" not in tail:  # no end marker: decode to be sure (truncated files fail)
                with Image.open(path) as im:
                    im.load()
    except Exception as err:  # noqa: BLE001 - any failure to parse is "unreadable"
        text = " ".join(str(err).split())
        return f"{type(err).__name__}: {text}" if text else type(err).__name__
    return None


def list_images(path: str | os.PathLike) -> list[Path]:
    """The image files of a folder (sorted), or the single file ``path``.

    Every file of a folder is checked first; unreadable ones are all named in one PnPError
    (or left out, inside ``skipping_unreadable()``)."""
    path = Path(path)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise PnPError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {path}")
        bad = {p: reason for p in images if (reason := unreadable_reason(p)) is not None}
        if bad and _skipped is None:
            listed = "; ".join(f"{p.name} ({reason})" for p, reason in bad.items())
            raise PnPError(f"{len(bad)} unreadable image(s) in folder {path}: {listed}; "
                           f"fix or remove them, or set skip_unreadable=true to leave them out")
        if bad:
            _skipped.update({str(p): reason for p, reason in bad.items()})
            images = [p for p in images if p not in bad]
            if not images:
                raise PnPError(f"every image in folder {path} is unreadable; nothing to restore")
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
            if mode in MODES_16:
                arr = np.asarray(im, dtype=np.float64)
                arr = arr / (65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0)
            elif mode in MODES_GRAY:
                arr = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
            elif mode in MODES_COLOUR:
                arr = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
            else:
                raise PnPError(_unsupported(mode, path))
    except FileNotFoundError:
        raise PnPError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise PnPError(f"cannot read image {path}: {err}") from None
    t = torch.from_numpy(np.ascontiguousarray(arr)).float()
    t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
    return t.clamp(0, 1)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) from the file header, with the errors of ``load_image`` (missing, unreadable,
    unsupported mode) but without decoding the pixels."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            mode, (w, h) = im.mode, im.size
    except FileNotFoundError:
        raise PnPError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise PnPError(f"cannot read image {path}: {err}") from None
    if mode not in MODES_16 + MODES_GRAY + MODES_COLOUR:
        raise PnPError(_unsupported(mode, path))
    return h, w


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


# ----------------------------------------------------------------------------- folders

class FolderInUse(PnPError):
    """Another live process holds the folder's lock."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"pid {info['pid']} on {info['host']} (since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "folder", name: str = ".lock"):
    """Hold an exclusive lock on ``folder`` (the file ``folder/<name>``) for the block.

    A second process asking for it gets ``FolderInUse``, a one-line PnPError naming the holder
    (pid, host, start time). The lock is an ``flock`` on that file, which the system releases
    when its holder dies: a lock left by a killed process is taken over, not refused. The file
    is removed on release."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderInUse(f"{what} {folder} is in use by {_holder(path)}; wait for it to finish, "
                              f"or write elsewhere") from None
        try:  # the file may have been released and removed between open and flock: lock the current one
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)


NO_WORK = (".hydra", ".lock")  # what a run folder holds before the run writes anything


def holds_results(folder: str | os.PathLike) -> bool:
    """Whether a run folder holds anything but Hydra's own files (``.hydra/``, logs) and a lock."""
    folder = Path(folder)
    return folder.is_dir() and any(p.name not in NO_WORK and p.suffix != ".log" for p in folder.iterdir())


def discard_run_dir(folder: str | os.PathLike, created: tuple[Path, ...] = ()) -> bool:
    """Remove a run folder that received no work (``holds_results`` false), then those of the
    folders ``created`` (by this run, e.g. ``outputs/<date>``) that are left empty. True if removed."""
    import shutil

    folder = Path(folder)
    if not folder.is_dir() or holds_results(folder):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    for parent in sorted(created, key=lambda p: len(p.parts), reverse=True):
        try:
            parent.rmdir()  # only when empty
        except OSError:
            pass
    return True


def default_layout_parents(run_dir: str | os.PathLike) -> tuple[Path, ...]:
    """``outputs/<date>`` and ``outputs`` above a run folder of Hydra's default layout
    (``outputs/<date>/<time>`` in the current directory): removed with it when left empty."""
    outputs = Path.cwd().absolute() / "outputs"
    run_dir = Path(run_dir).absolute()
    return (run_dir.parent, outputs) if run_dir.parent.parent == outputs else ()


def new_folders(*paths) -> list[Path]:
    """Those of ``paths`` that do not exist yet (to remove them if a run fails before using them)."""
    return [Path(str(p)) for p in paths if p not in (None, "", ".") and not Path(str(p)).exists()]


def discard_failed_run(new: list[Path] = (), run_dir: str | os.PathLike | None = None) -> None:
    """After a run failed: remove its Hydra run folder if it holds no work (``.hydra/`` and empty
    logs only; with the ``outputs/<date>`` above it when left empty), and the folders of ``new``
    (see ``new_folders``) that the run created but left empty."""
    if run_dir is None:
        try:
            from hydra.core.hydra_config import HydraConfig

            run_dir = HydraConfig.get().runtime.output_dir
        except Exception:  # noqa: BLE001 - not inside a Hydra run
            run_dir = None
    if run_dir is not None:
        discard_run_dir(run_dir, default_layout_parents(run_dir))
    for folder in new:
        try:
            folder.rmdir()  # only when empty
        except OSError:
            pass
