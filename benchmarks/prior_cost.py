"""Cost of one solver iteration of the learned priors, relative to the network calls it needs.

    python benchmarks/prior_cost.py [--weights PATH] [--precision fp32|bf16] [--size 256]
                                    [--kernel PATH] [--boundary valid|circular] [--iterations 10]

For each (prior, solver) pair: the seconds per iteration of the solver loop (data terms,
objective log and monitor included), divided by the seconds of the network calls the
algorithm needs, measured alone on the same input: DAEP one forward + one vector-Jacobian
product; DMSP, RED and PnP one forward. Also counts the calls actually made per iteration.
Steady state: (T(n + 2 iterations) - T(2 iterations)) / n, each T the fastest of ``--repeats``
timings (the least disturbed by other load). The target is a ratio <= 1.2.

A second ratio, "in the run", needs no separate timing: the network is timed inside the solver
loop (forward calls, and the backward pass through it for DAEP's vector-Jacobian product), so
both times come from the same run and load on the machine moves them together; it is the
median over the repeats of (loop seconds) / (seconds inside the network), both steady-state.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
PAIRS = [("daep", "gd"), ("dmsp", "gd"), ("red", "gd"), ("red", "fixed_point"), ("red", "admm"),
         ("denoiser", "hqs"), ("denoiser", "admm")]


class _BackwardMark(torch.autograd.Function):
    """Identity whose backward records the time: at the network's output (the backward pass
    through it starts) or at its input (the pass ends)."""

    @staticmethod
    def forward(ctx, x, counter, ends):
        ctx.counter, ctx.ends = counter, ends
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        ctx.counter.mark_backward(ctx.ends)
        return grad, None, None


class Counting(torch.nn.Module):
    """Counts the network's calls and the seconds spent in them (forward, and backward through it)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls, self.seconds, self._start = net, 0, 0.0, 0.0

    def mark_backward(self, ends: bool) -> None:
        now = time.perf_counter()
        if ends:
            self.seconds += now - self._start
        else:
            self._start = now

    def forward(self, x, sigma):
        self.calls += 1
        tracked = torch.is_grad_enabled() and x.requires_grad
        if tracked:
            x = _BackwardMark.apply(x, self, True)
        t = time.perf_counter()
        out = self.net(x, sigma)
        self.seconds += time.perf_counter() - t
        return _BackwardMark.apply(out, self, False) if tracked else out


def best_seconds(fn, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls after a warm-up (the least disturbed by other load)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def network_seconds(net, x, sigma, vjp: bool, repeats: int) -> float:
    def forward():
        with torch.no_grad():
            net(x, sigma)

    def forward_vjp():
        xi = x.detach().requires_grad_(True)
        out = net(xi, sigma)
        torch.autograd.grad(out, xi, grad_outputs=(xi - out).detach())

    return best_seconds(forward_vjp if vjp else forward, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="denoiser weights (default: the shipped model)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--image", default=str(SHARED / "test" / "set12" / "01.png"))
    parser.add_argument("--size", type=int, default=256, help="centre crop (pixels)")
    parser.add_argument("--kernel", default=str(SHARED / "kernels" / "levin" / "levin_1.npy"))
    parser.add_argument("--boundary", default="valid", choices=["valid", "circular"])
    parser.add_argument("--sigma", type=float, default=7.65, help="noise (0-255)")
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pairs", default=",".join(f"{p}:{s}" for p, s in PAIRS), help="prior:solver,...")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from pnp.api import compose_config
    from pnp.io import load_image
    from pnp.monitor import Monitor
    from pnp.problem import make_problem
    from pnp.runner import build_triple

    x = load_image(args.image)
    h, w = x.shape[-2:]
    s = min(args.size, h, w)
    x = x[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    op = {"name": "blur", "kernel": args.kernel, "boundary": args.boundary}
    print(f"image {Path(args.image).name} {tuple(x.shape)}, blur {Path(args.kernel).name} ({args.boundary}), "
          f"noise {args.sigma}, precision {args.precision}, {args.threads} thread(s)")
    print("| prior | solver | s/iteration | network calls/iteration | s of those calls | ratio | ratio in the run |")
    print("|---|---|---|---|---|---|---|")
    overrides = {"prior.denoiser.precision": args.precision}
    if args.weights:
        overrides["prior.denoiser.weights"] = args.weights
    for pair in args.pairs.split(","):
        prior_name, solver_name = pair.split(":")
        cfg = compose_config(op="blur", prior=prior_name, solver=solver_name,
                             overrides={**overrides, "solver.iterations": args.iterations})
        prior, solver = build_triple(cfg)
        problem = make_problem(x, op, {"name": "gaussian", "sigma": args.sigma}, seed=0)
        prior.setup(problem)
        net = prior.net = Counting(prior.net)
        sigma = getattr(prior, "sigma", problem.sigma_eff)
        z = problem.op.init(problem.y)
        per_call = network_seconds(net.net, z, sigma, vjp=prior_name == "daep", repeats=args.repeats)

        def run(iterations):
            solver.iterations = iterations
            prior.setup(problem)
            solver.solve(problem, prior, Monitor(iterations, problem.x_true, progress=False))

        # steady state: (T(2 + n) - T(2)) / n leaves out setup and the first iteration's extra call.
        # One set of timed runs gives both ratios: the fastest T of each length against the network
        # alone, and per repeat, the loop's seconds over the seconds inside the network.
        long, short = args.iterations + 2, 2
        run(long)  # warm-up
        timed = {long: [], short: []}  # iterations -> [(seconds, seconds in the network, calls)]
        for _ in range(args.repeats):
            for iterations in (long, short):
                net.calls, net.seconds = 0, 0.0
                t = time.perf_counter()
                run(iterations)
                timed[iterations].append((time.perf_counter() - t, net.seconds, net.calls))
        seconds = (min(r[0] for r in timed[long]) - min(r[0] for r in timed[short])) / args.iterations
        in_run = [(lg[0] - sh[0]) / (lg[1] - sh[1]) for lg, sh in zip(timed[long], timed[short])]
        calls = (timed[long][-1][2] - timed[short][-1][2]) / args.iterations
        needed = 1.0  # one forward (DAEP: one forward + one VJP, timed together)
        print(f"| {prior_name} | {solver_name} | {seconds:.4f} | {calls:.2f} | {needed * per_call:.4f} | "
              f"{seconds / (needed * per_call):.2f} | {statistics.median(in_run):.2f} |", flush=True)


if __name__ == "__main__":
    main()
