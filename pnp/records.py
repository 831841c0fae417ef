"""Run records: the plain values a run writes into ``metrics.json`` and ``status.json``, and
how they are read back and named.

- ``plain``: a config node as the plain, resolved dict that a record holds;
- ``VOLATILE_KEYS``: config keys that change speed or logging, never results: left out of a
  job's fingerprint (``pnp.benchmark``) and of a method's name in a report (``pnp.report``);
- ``read_json``: a record file, or None when it is missing or unreadable;
- ``setting_label`` and ``short_value``: how a problem setting (``noise.sigma=2.55``,
  ``op.kernel=levin_1.npy``) is named in folder names, records and report tables;
- ``distinct`` and ``finite_mean``: the two reductions of the report's tables.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

VOLATILE_KEYS = ("progress", "log_every", "threads", "sweep", "batch_size", "batch_pixels", "overwrite", "skip_unreadable")
KERNEL_SUFFIXES = (".npy", ".mat", ".png")  # kernel files, named by their stem


def plain(node) -> dict:
    """A config node (``DictConfig``, resolved) or a mapping as a plain dict."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


def read_json(path: Path):
    """The parsed file, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def short_value(value) -> str:
    """A setting's value as it is shown: ``2.55``, a kernel file's stem, or the text."""
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    return Path(text).stem if ("/" in text or Path(text).suffix.lower() in KERNEL_SUFFIXES) else text


def setting_label(key: str, value) -> str:
    """A problem setting's label: ``σ=2.55`` (noise level), ``levin_1`` (kernel), ``x4`` (scale),
    else ``name=value``, with ``key``'s last dotted part as the name."""
    name = key.rsplit(".", 1)[-1]
    if name == "sigma":
        return f"σ={short_value(value)}"
    if name == "kernel":
        return short_value(value)
    if name == "scale":
        return f"x{short_value(value)}"
    return f"{name}={short_value(value)}"


def distinct(items) -> list:
    """The distinct items, in the order they are first seen."""
    return list(dict.fromkeys(items))


def finite_mean(values) -> float | None:
    """The mean of the finite numbers among ``values`` (booleans are not numbers), None if none."""
    numbers = [float(v) for v in values
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return sum(numbers) / len(numbers) if numbers else None
