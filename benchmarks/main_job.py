"""The main job on the built-in image, timed: ``python -m pnp solver=gd prior=daep op=blur`` and
``python -m pnp prior=denoiser op=blur`` (the default problem: 25 x 25 Gaussian blur, valid
boundary, noise 7.65).

    python benchmarks/main_job.py [--threads 1] [--precisions auto,fp32] [--log-every auto|N] [--device auto]

Per prior and precision: the wall time of the solve (setup, loading the network, and every
iteration), its PSNR, the iterations, and the ratio of the loop's seconds to the seconds spent
inside the network in that same run (the network's forward calls, and for DAEP the backward pass
through it for its vector-Jacobian product): 1.0 would mean the loop costs nothing beside the
network. Printed with the hardware it ran on.
"""
from __future__ import annotations

import argparse
import time

import torch

from common import machine_line
from prior_cost import Counting
from pnp.api import compose_config
from pnp.io import default_image, load_image
from pnp.metrics import psnr
from pnp.monitor import Monitor
from pnp.problem import make_problem
from pnp.records import plain
from pnp.protocol import metric_border
from pnp.runner import build_triple, resolve_device

JOBS = (("daep", "gd"), ("denoiser", "hqs"))


def timed_run(prior_name: str, solver_name: str, precision: str, device: torch.device, log_every: int | str) -> dict:
    cfg = compose_config(op="blur", prior=prior_name, solver=solver_name,
                         overrides={"prior.denoiser.precision": precision})
    start = time.perf_counter()
    prior, solver = build_triple(cfg)
    op = plain(cfg.op)
    problem = make_problem(load_image(default_image()), op, plain(cfg.noise), seed=0, device=device)
    prior.to(device)
    prior.setup(problem)
    net = prior.net = Counting(prior.net)
    loop_start = time.perf_counter()
    monitor = Monitor(solver.iterations, problem.x_true, progress=False, residual=problem.residual,
                      log_every=log_every)
    x = solver.run(problem, prior, monitor)
    if device.type == "cuda":
        torch.cuda.synchronize()
    end = time.perf_counter()
    border = metric_border("auto", op)
    return {"seconds": end - start, "psnr": float(psnr(x.clamp(0, 1), problem.x_true, border).mean()),
            "observed": float(psnr(problem.op.baseline(problem.y).clamp(0, 1), problem.x_true, border).mean()),
            "iterations": solver.iterations, "calls": net.calls, "ratio": (end - loop_start) / net.seconds,
            "precision": prior.precision, "log_every": monitor.log_every}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precisions", default="auto,fp32")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--log-every", default="auto", help="convergence row interval (auto: 1 on CPU, 10 on CUDA)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    log_every = args.log_every if args.log_every == "auto" else int(args.log_every)
    print(machine_line(args.threads) + f"; device {device}; log_every {log_every}")
    print("\n| job | precision | seconds | PSNR (observed) | iterations | network calls | loop / network |")
    print("|---|---|---|---|---|---|---|")
    for prior_name, solver_name in JOBS:
        for precision in args.precisions.split(","):
            r = timed_run(prior_name, solver_name, precision, device, log_every)
            shown = precision if precision != "auto" else f"auto ({r['precision']})"
            print(f"| prior={prior_name} solver={solver_name} | {shown} | {r['seconds']:.2f} | "
                  f"{r['psnr']:.2f} ({r['observed']:.2f}) | "
                  f"{r['iterations']} | {r['calls']} | {r['ratio']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
