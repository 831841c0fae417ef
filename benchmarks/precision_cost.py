"""PSNR cost and speed-up of bf16 against fp32, per learned prior, on the same problems.

    python benchmarks/precision_cost.py [--images 2] [--crop 96] [--priors denoiser,red,daep,dmsp]

Each prior restores the same observations twice with its defaults, once with the network in
fp32 and once in bf16 + channels_last (``prior.denoiser.precision``), one thread: deblurring
(Levin kernel 1, valid boundary, noise 7.65) and bicubic SR x4 (noise-free), on centre crops
of the validation images (``../shared/data/test/set5``). Prints the mean PSNR of each, their
difference (the target: bf16 at most 0.05 dB below fp32) and the time ratio fp32 / bf16
measured in the same run, with the CPU it ran on. On a CPU without native bfloat16 the ratio
is below 1 (bf16 is emulated): ``precision: auto`` picks fp32 there.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import SHARED, centre_crops, machine_line
from pnp.api import restore

PROBLEMS = {
    "deblur": dict(op="blur", **{"op.boundary": "valid", "noise.sigma": 7.65}),
    "sr x4": dict(op="sr", noise="none", **{"op.scale": 4}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--priors", default="denoiser,red,daep,dmsp")
    args = ap.parse_args()
    torch.set_num_threads(1)
    images = centre_crops(SHARED / "test" / "set5", args.images, args.crop)
    kernel = SHARED / "kernels" / "levin" / "levin_1.npy"
    print(machine_line())
    print(f"{len(images)} images of set5, {args.crop}x{args.crop} centre crops\n")
    print("| prior | problem | fp32 PSNR | bf16 PSNR | bf16 - fp32 | fp32 s | bf16 s | fp32 / bf16 time |")
    print("|---|---|---|---|---|---|---|---|")
    for prior in args.priors.split(","):
        for name, problem in PROBLEMS.items():
            extra = {"op.kernel": str(kernel)} if problem["op"] == "blur" else {}
            psnr, secs = {}, {}
            for precision in ("fp32", "bf16"):
                values, start = [], time.perf_counter()
                for x in images:
                    _, m = restore(x, prior=prior, progress=False, seed=0,
                                   **{**problem, **extra, "prior.denoiser.precision": precision})
                    values.append(m["psnr"])
                secs[precision], psnr[precision] = time.perf_counter() - start, float(np.mean(values))
            print(f"| {prior} | {name} | {psnr['fp32']:.2f} | {psnr['bf16']:.2f} | "
                  f"{psnr['bf16'] - psnr['fp32']:+.2f} | {secs['fp32']:.1f} | {secs['bf16']:.1f} | "
                  f"{secs['fp32'] / secs['bf16']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
