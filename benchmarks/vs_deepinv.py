"""This project's solvers against deepinv's own algorithms, on identical problems with the
identical denoiser module, in one process.

    python benchmarks/vs_deepinv.py [--image set12/01.png] [--crop 128] [--precision fp32|bf16]

Problems (noise 7.65 unless noise-free): deblurring with Levin kernel 1
(``../shared/data/kernels/levin``), circular and valid boundary, and bicubic SR x4 (noise-free).
The observation is this project's (``pnp.problem.make_problem``, seed 0); deepinv sees it through
``deepinv.physics.BlurFFT`` for the circular blur (checked to equal our operator) and through a
``deepinv.physics.LinearPhysics`` that calls our operator's A and A^T for the others, so both
solve the same equations.

The denoiser: the shipped network, loaded once (``prior.denoiser.grid_shift=false``: the plain
module), wrapped as a ``deepinv.models.Denoiser`` for deepinv and handed as it is to our priors.

- PnP: our ``prior=denoiser solver=hqs`` (DPIR's schedule; SR: 24 iterations) against
  ``deepinv.optim.DPIR`` (8 iterations).
- RED: our ``prior=red`` with its defaults (fixed point, the tuned lambda and sigma) against
  deepinv's ``optim_builder("GD", prior=RED(denoiser), data_fidelity=L2(sigma))`` with the same
  lambda and sigma and the authors' steepest-descent step 2 / (1 / sigma^2 + lambda), run until it
  reaches our PSNR within 0.05 dB (or ``--red-max`` iterations).

Per problem and method: PSNR, seconds, iterations, seconds per iteration, and the ratios
(deepinv / ours), one thread, with the CPU it ran on.
"""
from __future__ import annotations

import argparse
import time

import deepinv as dinv
import torch

from common import SHARED, machine_line
from pnp.api import compose_config
from pnp.io import load_image
from pnp.metrics import psnr
from pnp.monitor import Monitor
from pnp.problem import make_problem
from pnp.records import plain
from pnp.protocol import metric_border
from pnp.runner import build_triple

KERNEL = SHARED / "kernels" / "levin" / "levin_1.npy"
PROBLEMS = {
    "deblur circular": ("blur", {"op.boundary": "circular", "op.kernel": str(KERNEL), "noise.sigma": 7.65}),
    "deblur valid": ("blur", {"op.boundary": "valid", "op.kernel": str(KERNEL), "noise.sigma": 7.65}),
    "SR x4 bicubic": ("sr", {"op.scale": 4, "noise": "none"}),
}


class SharedDenoiser(dinv.models.Denoiser):
    """Our network with deepinv's ``Denoiser`` interface (the same module, not a copy)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, sigma, **kwargs):
        return self.net(x, sigma)


def physics_for(problem, boundary: str | None) -> dinv.physics.LinearPhysics:
    op = problem.op
    if boundary == "circular":
        for kernel in (op.kernel, op.kernel.flip(-1, -2)):  # deepinv's orientation, checked below
            physics = dinv.physics.BlurFFT(img_size=tuple(problem.x_true.shape[1:]),
                                           filter=kernel.reshape(1, 1, *kernel.shape[-2:]).float())
            probe = torch.rand_like(problem.x_true)
            if torch.allclose(physics.A(probe), op.A(probe), atol=1e-5):
                return physics
    return dinv.physics.LinearPhysics(A=op.A, A_adjoint=op.A_adjoint, max_iter=100, tol=1e-5)


def ours(x, op_name, overrides, prior_name):
    """Our run with the prior's defaults; also returns its (plain, grid shift off) network."""
    cfg = compose_config(op=op_name, prior=prior_name, solver=None, overrides={
        **overrides, "prior.denoiser.grid_shift": False})
    prior, solver = build_triple(cfg)
    op_cfg = plain(cfg.op)
    problem = make_problem(x, op_cfg, plain(cfg.noise), seed=0)
    prior.setup(problem)
    start = time.perf_counter()
    out = solver.run(problem, prior, Monitor(solver.iterations, progress=False, residual=problem.residual))
    seconds = time.perf_counter() - start
    border = metric_border("auto", op_cfg)
    quality = float(psnr(out.clamp(0, 1), problem.x_true, border).mean())
    return problem, border, quality, seconds, solver.iterations, prior.params(), prior.net


def deepinv_dpir(problem, physics, net, border):
    model = dinv.optim.DPIR(sigma=max(problem.sigma, 1e-3), denoiser=SharedDenoiser(net))
    start = time.perf_counter()
    with torch.no_grad():
        out = model(problem.y, physics)
    seconds = time.perf_counter() - start
    return float(psnr(out.clamp(0, 1), problem.x_true, border).mean()), seconds, model.max_iter


def deepinv_red(problem, physics, net, border, lam: float, sigma_e: float, target: float, cap: int):
    sigma = max(problem.sigma, 1e-3)
    step = 2 / (1 / sigma**2 + lam)
    model = dinv.optim.optim_builder(
        iteration="GD", prior=dinv.optim.prior.RED(denoiser=SharedDenoiser(net)),
        data_fidelity=dinv.optim.data_fidelity.L2(sigma=sigma), max_iter=cap, early_stop=False,
        params_algo={"stepsize": step, "lambda": lam, "g_param": sigma_e})
    start = time.perf_counter()
    with torch.no_grad():
        out, metrics = model(problem.y, physics, x_gt=problem.x_true, compute_metrics=True)
    seconds = time.perf_counter() - start
    curve = metrics["psnr"][0]
    reached = next((k + 1 for k, v in enumerate(curve) if v >= target - 0.05), None)
    final = float(psnr(out.clamp(0, 1), problem.x_true, border).mean())
    return final, seconds, cap, reached


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default="set12/01.png")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--red-max", type=int, default=600)
    args = ap.parse_args()
    torch.set_num_threads(1)
    x = load_image(SHARED / "test" / args.image)
    h, w = x.shape[-2:]
    x = x[..., (h - args.crop) // 2:(h - args.crop) // 2 + args.crop, (w - args.crop) // 2:(w - args.crop) // 2 + args.crop]
    print(machine_line() + f"; deepinv {dinv.__version__}; network in {args.precision}")
    print(f"image {args.image}, {args.crop}x{args.crop} centre crop\n")
    print("| problem | method | ours: PSNR / s / iterations | deepinv: PSNR / s / iterations | "
          "s per iteration, deepinv / ours | time to our PSNR, deepinv / ours |")
    print("|---|---|---|---|---|---|")
    for name, (op_name, overrides) in PROBLEMS.items():
        overrides = {**overrides, "prior.denoiser.precision": args.precision}
        for method in ("PnP-HQS / DPIR", "RED"):
            prior_name = "denoiser" if method.startswith("PnP") else "red"
            problem, border, q, s, it, params, net = ours(x, op_name, overrides, prior_name)
            physics = physics_for(problem, overrides.get("op.boundary"))
            if prior_name == "denoiser":
                dq, ds, dit = deepinv_dpir(problem, physics, net, border)
                to_target = ""
            else:
                lam, sigma_e = params["weight"], params["sigma"] / 255
                dq, ds, dit, reached = deepinv_red(problem, physics, net, border, lam, sigma_e, q, args.red_max)
                to_target = (f"{ds * reached / dit / s:.2f} ({reached} it)" if reached
                             else f"not reached in {dit} it")
            print(f"| {name} | {method} | {q:.2f} / {s:.2f} / {it} | {dq:.2f} / {ds:.2f} / {dit} | "
                  f"{(ds / dit) / (s / it):.2f} | {to_target} |", flush=True)


if __name__ == "__main__":
    main()
