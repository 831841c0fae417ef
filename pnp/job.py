"""One configuration's run, as ``python -m pnp`` and each job of a sweep do it: the checks that
need no solving (``pnp.validate.check_run``), then either one image (``pnp.runner.run``, with
its side-by-side page ``compare.html``) or, for a suite (``benchmark=...``) or a folder of
several images, every (problem, image) pair (``pnp.benchmark.run_suite``: a plain folder is a
suite of one problem).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from pnp.benchmark import run_suite
from pnp.io import list_images, save_json, skipped_images, skipping_unreadable
from pnp.report_html import write_compare
from pnp.runner import run as run_image
from pnp.validate import check_run


def apply_threads(cfg) -> None:
    """``threads=N``: N torch threads in this process (null: torch's default)."""
    threads = cfg.get("threads")
    if threads:
        torch.set_num_threads(int(threads))


def wants_suite(cfg) -> bool:
    """True for a benchmark suite or a folder of several images; false for one image."""
    if cfg.get("benchmark"):
        return True
    image = cfg.get("image")
    return bool(image) and Path(str(image)).is_dir() and len(list_images(image)) > 1


def run(cfg, outdir: str | Path, progress: bool = True) -> dict:
    """Check ``cfg``, then restore its image or its suite into ``outdir``; return what
    ``metrics.json`` holds. With ``skip_unreadable=true``, the unreadable files of the image
    folder are left out, listed in ``metrics.json`` (``skipped_images``) and in one warning line."""
    outdir = Path(outdir)
    with skipping_unreadable(bool(cfg.get("skip_unreadable", False))):
        check_run(cfg)
        skipped = skipped_images()
        if skipped:
            names = ", ".join(Path(p).name for p in skipped)
            print(f"warning: {len(skipped)} unreadable image(s) left out (skip_unreadable=true): {names}",
                  file=sys.stderr, flush=True)
        apply_threads(cfg)
        if wants_suite(cfg):
            result = run_suite(cfg, outdir, progress)
        else:
            result = run_image(cfg, outdir, progress)
            write_compare(outdir, [result])  # compare.html: the side-by-side page of this run
    if skipped and isinstance(result, dict):
        result["skipped_images"] = skipped
        save_json(result, outdir / "metrics.json")
    return result
