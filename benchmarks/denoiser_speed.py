"""Time one 256x256 colour denoiser call (ms) for a few depth x width choices.

Usage: python benchmarks/denoiser_speed.py [--threads 2] [--reps 10]
Prints a markdown table: params; ms per forward call (inference mode) in fp32 and in
bf16+channels_last, each with every conv and its ReLU fused into one oneDNN kernel (the
default on CPU) and without (``fuse = False``); ms per vector-Jacobian product (forward and
backward through the input, what DAEP calls each iteration) in bf16, fused; and the training
step time at batch 32 x 64^2 in bf16.
"""

import argparse
import time

import torch

from common import machine_line
from pnp.models.ffdnet import FFDNet


def time_call(fn, reps):
    fn(); fn()  # warm-up (oneDNN primitive creation)
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return 1000 * (time.perf_counter() - t) / reps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--configs", default="12x96,15x96,12x128")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.rand(1, 3, 256, 256)
    xb, sb = torch.rand(32, 3, 64, 64), torch.rand(32) * 0.3
    print(machine_line(a.threads))
    print(f"threads={a.threads}, input 1x3x256x256, train batch 32x3x64x64")
    print("| depth x width | params (M) | fp32 ms/call (unfused) | bf16+CL ms/call (unfused) "
          "| bf16 VJP ms | bf16 train step ms |")
    print("|---|---|---|---|---|---|")
    for cfg in a.configs.split(","):
        d, w = map(int, cfg.split("x"))
        net = FFDNet(depth=d, width=w).eval()
        n = sum(q.numel() for q in net.parameters()) / 1e6
        times = {}
        for precision in ("fp32", "bf16"):
            net.set_precision(precision)
            for fuse in (True, False):
                net.fuse = fuse
                with torch.inference_mode():
                    times[precision, fuse] = time_call(lambda: net(x, 25 / 255), a.reps)
        net.fuse = True
        net.requires_grad_(False)

        def vjp():
            xi = x.clone().requires_grad_(True)
            return torch.autograd.grad(net(xi, 25 / 255), xi, x)[0]

        tvjp = time_call(vjp, a.reps)
        net.requires_grad_(True).train()
        opt = torch.optim.Adam(net.parameters())

        def step():
            loss = ((net(xb, sb) - xb) ** 2).mean()
            opt.zero_grad(); loss.backward(); opt.step()

        ttr = time_call(step, max(3, a.reps // 3))
        print(f"| {d}x{w} | {n:.3f} | {times['fp32', True]:.1f} ({times['fp32', False]:.1f}) | "
              f"{times['bf16', True]:.1f} ({times['bf16', False]:.1f}) | {tvjp:.1f} | {ttr:.0f} |", flush=True)


if __name__ == "__main__":
    main()
