"""Images per second of one prior through the real command line: one job on one CPU thread,
then two parallel jobs (``hydra/launcher=local_parallel``), each on one thread.

    python benchmarks/throughput.py                       # tv + its default solver, denoise
    python benchmarks/throughput.py --prior red --op blur --images 32 --size 96 --iterations 30

The images are crops of the built-in image (or ``--folder``). Two rates are printed: end to
end (wall clock, Python and torch start-up included) and solving only (the sum of the
per-image ``seconds`` in metrics.json; for parallel jobs the slower job's sum).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image


def make_images(folder: Path, count: int, size: int) -> Path:
    """``count`` crops of the built-in image, ``size`` x ``size``, at different offsets."""
    from pnp.io import default_image

    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(default_image()) as im:
        im = im.convert("RGB")
        W, H = im.size
        for i in range(count):
            x, y = (i * 37) % max(1, W - size), (i * 53) % max(1, H - size)
            im.crop((x, y, x + size, y + size)).save(folder / f"crop_{i:03d}.png")
    return folder


def run(args: list[str]) -> float:
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "pnp", *args], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"failed: python -m pnp {' '.join(args)}\n{res.stderr[-2000:]}")
    return time.perf_counter() - start


def solve_seconds(metrics_json: Path) -> tuple[int, float]:
    m = json.loads(metrics_json.read_text())
    entries = m.get("images", [m])
    return len(entries), sum(e["seconds"] for e in entries)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prior", default="tv")
    p.add_argument("--solver", default=None, help="default: the prior's own")
    p.add_argument("--op", default="denoise")
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--folder", help="use this folder of images instead of crops")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = Path(a.folder) if a.folder else make_images(tmp / "images", a.images, a.size)
        common = [f"prior={a.prior}", f"op={a.op}", f"image={folder}", f"solver.iterations={a.iterations}",
                  f"batch_size={a.batch_size}", "threads=1", "progress=false"]
        common += [f"solver={a.solver}"] if a.solver else []
        wall1 = run([*common, f"hydra.run.dir={tmp / 'one'}"])
        n1, solve1 = solve_seconds(tmp / "one" / "metrics.json")
        wall2 = run(["-m", *common, "seed=0,1", "hydra/launcher=local_parallel", f"hydra.sweep.dir={tmp / 'two'}"])
        jobs = [solve_seconds(tmp / "two" / str(j) / "metrics.json") for j in (0, 1)]
        n2, solve2 = sum(n for n, _ in jobs), max(s for _, s in jobs)
    print(f"prior={a.prior} op={a.op}: {n1} images of {a.size}x{a.size}, {a.iterations} iterations, "
          f"batch_size={a.batch_size}")
    print(f"{'setting':<30} {'images':>6} {'wall s':>8} {'img/s end-to-end':>17} {'img/s solving':>14}")
    print(f"{'1 job x 1 thread':<30} {n1:>6} {wall1:>8.1f} {n1 / wall1:>17.2f} {n1 / solve1:>14.2f}")
    print(f"{'2 parallel jobs x 1 thread':<30} {n2:>6} {wall2:>8.1f} {n2 / wall2:>17.2f} {n2 / solve2:>14.2f}")


if __name__ == "__main__":
    main()
