"""The classical methods beside the learned denoiser: Wiener's tuning, then denoising, deblurring
and SR with BM3D, non-local means and the network.

    python benchmarks/classical.py [--part all|wiener|validation] [--crop 96] [--images 5]

Part ``wiener`` (the tuning split: centre crops of 8 images of ``../shared/data/train/cbsd432``,
every 50th): ``prior=wiener`` over a grid of spectrum exponents and weights on 80 problems
(circular blur with Levin kernels 1 and 5 at noise 2.55 / 7.65 / 12.75, denoising at
5 / 15 / 25 / 50); per setting, the mean PSNR and the number of problems below the observation.
The shipped default is the setting with the fewest problems below, then the best mean.

Part ``validation`` (the validation split: centre crops of ``../shared/data/test/set5``):
- denoising at sigma 15 / 25 / 50: one call of each denoiser, D(y, sigma): the network, BM3D,
  NLM, and the Wiener filter with its defaults;
- deblurring (Levin kernel 1, circular boundary, noise 7.65) and bicubic SR x2 (noise-free):
  ``prior=denoiser`` (PnP-HQS, its defaults) with ``prior.denoiser.name`` network / bm3d / nlm,
  and the Wiener filter on the deblurring problem.
Per row: mean PSNR, the observation's (the baseline) and the seconds per image of the solve
itself (``metrics["seconds"]``: not composing the config or loading the network), one thread,
with the CPU it ran on.
"""
from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from common import SHARED, centre_crops, machine_line, mean_of, restore_each
from pnp.api import restore
from pnp.models.classical import load_classical
from pnp.models.loading import load_denoiser
from pnp.metrics import psnr

KERNELS = SHARED / "kernels" / "levin"
EXPONENTS = (1.5, 2.0, 2.25, 2.5, 3.0)
WEIGHTS = (0.5, 1.0, 2.0)


def wiener_problems() -> list[dict]:
    blur = [{"op": "blur", "op.boundary": "circular", "op.kernel": str(KERNELS / f"levin_{k}.npy"),
             "noise.sigma": s} for k in (1, 5) for s in (2.55, 7.65, 12.75)]
    return blur + [{"op": "denoise", "noise.sigma": s} for s in (5.0, 15.0, 25.0, 50.0)]


def wiener_tuning(side: int) -> None:
    images = centre_crops(SHARED / "train" / "cbsd432", 8, side, step=50)
    problems = wiener_problems()
    print(f"Wiener tuning: {len(images)} cbsd432 crops {side}x{side} x {len(problems)} problems\n")
    print("| exponent | weight | mean PSNR | below the observation |")
    print("|---|---|---|---|")
    for exponent, weight in itertools.product(EXPONENTS, WEIGHTS):
        gains = []
        for x, problem in itertools.product(images, problems):
            _, m = restore(x, prior="wiener", seed=0, **{**problem, "prior.exponent": exponent, "prior.weight": weight})
            gains.append((m["psnr"], m["psnr"] - m["psnr_observed"]))
        g = np.array(gains)
        print(f"| {exponent} | {weight} | {g[:, 0].mean():.2f} | {int((g[:, 1] < 0).sum())} of {len(g)} |", flush=True)


def denoising(images: list[torch.Tensor]) -> None:
    network = load_denoiser()
    denoisers = {"network": network, "bm3d": load_classical("bm3d"), "nlm": load_classical("nlm")}
    print("\n| denoising, sigma | observation | network | BM3D | NLM | Wiener |")
    print("|---|---|---|---|---|---|")
    seconds = {name: 0.0 for name in [*denoisers, "wiener"]}
    for sigma in (15.0, 25.0, 50.0):
        scores = {name: [] for name in seconds}
        observed = []
        for i, x in enumerate(images):
            noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(i)) * sigma / 255
            y = x + noise
            observed.append(float(psnr(y.clamp(0, 1), x)))
            for name, d in denoisers.items():
                start = time.perf_counter()
                with torch.no_grad():
                    out = d(y, sigma / 255)
                seconds[name] += time.perf_counter() - start
                scores[name].append(float(psnr(out.clamp(0, 1), x)))
            _, m = restore(x, op="denoise", prior="wiener", seed=i, **{"noise.sigma": sigma})
            seconds["wiener"] += m["seconds"]  # the filter alone, as the denoisers above
            scores["wiener"].append(m["psnr"])
        print(f"| {sigma:g} | {np.mean(observed):.2f} | "
              + " | ".join(f"{np.mean(scores[n]):.2f}" for n in seconds) + " |", flush=True)
    calls = 3 * len(images)
    print("| s / call | | " + " | ".join(f"{seconds[n] / calls:.3f}" for n in seconds) + " |")


def restoration(images: list[torch.Tensor]) -> None:
    problems = {
        "deblur (Levin 1, circular, 7.65)": {"op": "blur", "op.boundary": "circular",
                                             "op.kernel": str(KERNELS / "levin_1.npy"), "noise.sigma": 7.65},
        "SR x2 (bicubic, noise-free)": {"op": "sr", "op.scale": 2, "noise": "none"},
    }
    methods = {"PnP-HQS network": ("denoiser", {}),
               "PnP-HQS BM3D": ("denoiser", {"prior.denoiser.name": "bm3d"}),
               "PnP-HQS NLM": ("denoiser", {"prior.denoiser.name": "nlm"}),
               "Wiener": ("wiener", {})}
    print("\n| problem | method | observation | PSNR | s / image |")
    print("|---|---|---|---|---|")
    for name, problem in problems.items():
        for method, (prior, extra) in methods.items():
            if prior == "wiener" and problem["op"] != "blur":
                continue
            rows, secs = restore_each(images, prior=prior, **{**problem, **extra})
            print(f"| {name} | {method} | {mean_of(rows, 'psnr_observed'):.2f} | {mean_of(rows, 'psnr'):.2f} | "
                  f"{secs:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("all", "wiener", "validation"), default="all")
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--images", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(machine_line())
    if args.part in ("all", "wiener"):
        wiener_tuning(args.crop)
    if args.part in ("all", "validation"):
        images = centre_crops(SHARED / "test" / "set5", args.images, args.crop)
        print(f"\nvalidation: {len(images)} set5 centre crops {args.crop}x{args.crop}")
        denoising(images)
        restoration(images)


if __name__ == "__main__":
    main()
