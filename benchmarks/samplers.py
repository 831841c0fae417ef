"""The posterior samplers side by side: Langevin, SNIPS and DDRM with the shipped denoiser's score.

    python benchmarks/samplers.py [--part all|snips_budget|validation] [--images 3] [--crop 64] [--samples 4]

Part ``snips_budget`` (the tuning split: 64 x 64 centre crops of 4 images of
``../shared/data/train/cbsd432``): SNIPS's levels x steps and step c, per problem the mean PSNR
of the posterior mean, the baseline's, and the worst margin over the baseline.

Part ``validation`` (centre crops of ``../shared/data/test/set5``): ``prior=score`` with
``solver=langevin`` (Kadkhodaie & Simoncelli), ``solver=snips`` and ``solver=ddrm``, each with its
defaults and ``--samples`` chains. Per sampler and problem: the PSNR of the posterior mean, the
mean PSNR of single samples, the correlation of the uncertainty map with the absolute error of
the mean, the baseline's PSNR (the observation with its missing pixels / bicubic / the blurred
image) and the solver's seconds per image, with the CPU it ran on.

Problems: inpainting (50% missing, noise 7.65), noise-free bicubic SR x2, and deblurring (Levin
kernel 1, circular boundary, noise 7.65), one thread.
"""
from __future__ import annotations

import argparse

import torch

from common import SHARED, centre_crops, machine_line, mean_of, restore_each

PROBLEMS = {
    "inpaint 50%, noise 7.65": dict(op="inpaint", **{"noise.sigma": 7.65}),
    "SR x2 (bicubic)": dict(op="sr", noise="none", **{"op.scale": 2}),
    "deblur (Levin 1, circular), noise 7.65": dict(op="blur", **{
        "op.boundary": "circular", "op.kernel": str(SHARED / "kernels" / "levin" / "levin_1.npy"), "noise.sigma": 7.65}),
}
SAMPLERS = ("langevin", "snips", "ddrm")
SNIPS_BUDGETS = [dict(levels=50, steps=3, c=0.1), dict(levels=100, steps=4, c=0.2),
                 dict(levels=20, steps=20, c=0.1), dict(levels=20, steps=20, c=0.2)]


def snips_budget(samples: int) -> None:
    images = centre_crops(SHARED / "train" / "cbsd432", 4, 64, start=5, step=95)
    print(f"SNIPS budget: {len(images)} cbsd432 crops 64x64, {samples} chains\n")
    print("| levels x steps | c | problem | baseline | mean PSNR | worst margin | s / image |")
    print("|---|---|---|---|---|---|---|")
    for budget in SNIPS_BUDGETS:
        for name, problem in PROBLEMS.items():
            rows, secs = restore_each(images, seed=0, prior="score", solver="snips", **{
                **problem, "solver.samples": samples, **{f"solver.{k}": v for k, v in budget.items()}})
            worst = min(m["psnr"] - m["psnr_observed"] for m in rows)
            print(f"| {budget['levels']} x {budget['steps']} | {budget['c']} | {name} | "
                  f"{mean_of(rows, 'psnr_observed'):.2f} | {mean_of(rows, 'psnr'):.2f} | {worst:+.2f} | {secs:.1f} |",
                  flush=True)


def validation(images: list[torch.Tensor], samples: int) -> None:
    print(f"\nvalidation: {len(images)} set5 centre crops, {samples} chains\n")
    print("| problem | sampler | baseline | mean PSNR | single-sample PSNR | uncertainty-error corr. | s / image |")
    print("|---|---|---|---|---|---|---|")
    for name, problem in PROBLEMS.items():
        for sampler in SAMPLERS:
            rows, secs = restore_each(images, seed=0, prior="score", solver=sampler,
                                      **{**problem, "solver.samples": samples})
            print(f"| {name} | {sampler} | " + " | ".join(f"{mean_of(rows, key):.2f}" for key in (
                "psnr_observed", "psnr", "psnr_single_sample_mean", "uncertainty_error_correlation"))
                + f" | {secs:.1f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("all", "snips_budget", "validation"), default="all")
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--samples", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(machine_line())
    if args.part in ("all", "snips_budget"):
        snips_budget(args.samples)
    if args.part in ("all", "validation"):
        validation(centre_crops(SHARED / "test" / "set5", args.images, args.crop), args.samples)


if __name__ == "__main__":
    main()
