"""Measure Deep Image Prior (prior=dip) and the score sampler (prior=score solver=langevin).

    # DIP, Set5 x4 bicubic SR (the paper: 29.90 dB) and colour denoising at sigma 25 (29.22 dB):
    python benchmarks/dip_sampler.py dip --task sr --crop 128 --iterations 2000 --precision bf16
    python benchmarks/dip_sampler.py dip --task denoise --sigma 25 --crop 128
    # the sampler's mean vs point-estimate priors (inpainting 70% missing, SR x4), same problems:
    python benchmarks/dip_sampler.py sampler --task inpaint --weights checkpoints/denoiser_last.pt \
        --samples 8 --baseline denoiser --baseline "red solver.iterations=100"

Images: ``--images`` (default ../shared/data/test/set5), those named by ``--names``, the first ``--limit``, each centre-cropped
to ``--crop`` x ``--crop`` (0: to a multiple of 32, as the DIP authors crop). Every run composes
the configs as the CLI does and goes through ``pnp.runner.solve_problem``; ``--set key=value``
adds config overrides to the method measured. Times: wall seconds and the process's CPU seconds
(the machine may be shared). PSNR on RGB (and on BT.601 luma, Y), border =
the SR scale cropped; "best psnr" / "best at" is the best iterate seen by the monitor (an oracle:
it reads the ground truth; RGB, no border crop). Prints one markdown row per image, then the mean.
"""
from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import torch

from pnp.api import compose_config
from pnp.io import list_images, load_image
from pnp.metrics import psnr
from pnp.problem import make_problem
from pnp.records import plain as _plain
from pnp.runner import build_triple, solve_problem

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "test"


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    th, tw = (min(size, h), min(size, w)) if size else (h - h % 32, w - w % 32)
    top, left = (h - th) // 2, (w - tw) // 2
    return x[..., top:top + th, left:left + tw]


def task_overrides(args) -> tuple[str, dict]:
    """The operator and noise of the task, as config overrides."""
    if args.task == "sr":
        return "sr", {"op.scale": args.scale, "op.kernel": "bicubic", "noise.sigma": args.sigma}
    if args.task == "inpaint":
        return "inpaint", {"op.missing": args.missing, "noise.sigma": args.sigma}
    return "denoise", {"noise.sigma": args.sigma}


def parse_sets(items: list[str]) -> dict:
    return dict(item.split("=", 1) for item in items)


def run_one(x, op: str, prior: str, overrides: dict, seed: int, border: int, denoiser: dict | None = None):
    """Solve one problem through the runner; ``denoiser`` overrides apply to priors that have one."""
    cfg = compose_config(op=op, prior=prior, noise="gaussian", overrides={**overrides, "seed": seed})
    if denoiser and "denoiser" in cfg.prior:
        cfg = compose_config(op=op, prior=prior, noise="gaussian", overrides={**overrides, **denoiser, "seed": seed})
    prior_obj, solver_obj = build_triple(cfg)
    problem = make_problem(x, _plain(cfg.op), _plain(cfg.noise), seed=seed)
    start, cpu = time.perf_counter(), time.process_time()
    x_hat, metrics, rows, extras = solve_problem(problem, prior_obj, solver_obj, progress=False)
    row = {"psnr": float(psnr(x_hat, problem.x_true, border)), "psnr_y": float(psnr(x_hat, problem.x_true, border, "y")),
           "seconds": time.perf_counter() - start, "cpu_s": time.process_time() - cpu, "iterations": metrics["iterations"]}
    best = max((r for r in rows if r.get("psnr") is not None), key=lambda r: r["psnr"], default=None)
    if best is not None:  # an oracle (it reads the ground truth): where early stopping would have helped
        row["best psnr"], row["best at"] = best["psnr"], best["iteration"]
    row["psnr_observed"] = float(psnr(problem.op.baseline(problem.y).clamp(0, 1), problem.x_true, border))
    row.update({k: v for k, v in extras.items() if isinstance(v, (int, float))})
    return row


def table(rows: list[dict], columns: list[str]) -> None:
    print("| image | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for r in rows:
        print(f"| {r['image']} | " + " | ".join(_fmt(r.get(c)) for c in columns) + " |", flush=True)
    means = {c: sum(r[c] for r in rows) / len(rows) for c in columns if all(isinstance(r.get(c), (int, float)) for r in rows)}
    print("| **mean** | " + " | ".join(_fmt(means.get(c)) for c in columns) + " |")


def _fmt(v) -> str:
    return "" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("method", choices=["dip", "sampler"])
    p.add_argument("--task", choices=["sr", "denoise", "inpaint"], default="sr")
    p.add_argument("--images", default=str(SHARED / "set5"))
    p.add_argument("--limit", type=int, default=0, help="the first N images (0: all)")
    p.add_argument("--names", default="", help="only images whose name contains one of these (comma-separated)")
    p.add_argument("--crop", type=int, default=128, help="centre crop size (0: to a multiple of 32)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--sigma", type=float, default=None, help="noise, 0-255 (default: 25 denoise, 0 otherwise)")
    p.add_argument("--missing", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iterations", type=int, default=None, help="dip: solver.iterations (default: per task)")
    p.add_argument("--precision", default="fp32", help="dip: prior.precision; sampler: the denoiser's")
    p.add_argument("--weights", default=None, help="sampler: denoiser weights (default: the shipped ones)")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--baseline", action="append", default=[],
                   help='sampler: a point-estimate prior and its overrides, e.g. "denoiser solver.iterations=24"')
    p.add_argument("--set", action="append", default=[], help="extra override key=value for the method measured")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.sigma = args.sigma if args.sigma is not None else (25.0 if args.task == "denoise" else 0.0)
    op, base = task_overrides(args)
    border = args.scale if args.task == "sr" else 0
    images = [q for q in list_images(args.images) if not args.names or any(n in q.name for n in args.names.split(","))]
    images = images[: args.limit or None]
    print(f"{args.method} {args.task}: {len(images)} image(s) of {args.images}, crop {args.crop or 'to x32'}, "
          f"noise sigma {args.sigma}/255, seed {args.seed}, threads {args.threads}, border {border}")
    rows = []
    for path in images:
        x = centre_crop(load_image(path), args.crop)
        name = f"{path.stem} {x.shape[-2]}x{x.shape[-1]}"
        if args.method == "dip":
            sets = {**base, "prior.precision": args.precision, **parse_sets(args.set)}
            if args.iterations:
                sets["solver.iterations"] = args.iterations
            row = run_one(x, op, "dip", sets, args.seed, border)
            row["cpu s/iter"] = row["cpu_s"] / row["iterations"]
            rows.append({"image": name, **row})
            continue
        denoiser = {"prior.denoiser.precision": args.precision}
        if args.weights:
            denoiser["prior.denoiser.weights"] = args.weights
        sets = {**base, "solver.samples": args.samples, **parse_sets(args.set)}
        row = {"image": name, **run_one(x, op, "score", sets, args.seed, border, denoiser)}
        for spec in args.baseline:
            prior, *extra = shlex.split(spec)
            result = run_one(x, op, prior, {**base, **parse_sets(extra)}, args.seed, border, denoiser)
            row[f"{prior} psnr"] = result["psnr"]
        rows.append(row)
    if args.method == "dip":
        table(rows, ["psnr", "psnr_y", "psnr_observed", "best psnr", "best at", "seconds", "cpu_s", "iterations",
                     "cpu s/iter", "backtracks"])
    else:
        table(rows, ["psnr", "psnr_y", "psnr_single_sample_mean", "uncertainty_error_correlation",
                     "uncertainty_scale", "psnr_observed", "seconds", "cpu_s",
                     *[f"{shlex.split(s)[0]} psnr" for s in args.baseline]])


if __name__ == "__main__":
    main()
