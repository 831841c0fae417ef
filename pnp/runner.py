"""Assemble a prior x operator x solver triple from a config and restore one image with it.

``solve_problem`` is the core: one problem, one prior, one solver -> restored image and
metrics. ``run`` restores the one image of ``cfg.image`` (the built-in image when null), its
outputs written atomically into the run directory; a suite or a folder of several images is
``pnp.benchmark``'s, and ``pnp.job`` decides which of the two a configuration is.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from pnp.errors import PnPError
from pnp.io import default_image, list_images, load_image, save_csv, save_image, save_json
from pnp.metrics import aligned_psnr, psnr, psnr_border, ssim
from pnp.monitor import Monitor
from pnp.presets import select
from pnp.problem import Problem, make_problem
from pnp.protocol import metric_border
from pnp.records import plain
from pnp.registry import PRIORS, SOLVERS, check_compatible, check_operator
from pnp.validate import ssim_fits

RESERVED_PRIOR_KEYS = ("name", "solvers", "presets")
ITERATION_COUNTS = ("average",)  # solver parameters that count iterations (gd: the last N iterates averaged)


def resolve_device(device: str) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise PnPError(f"device={device} asked for, but CUDA is not available here; use device=cpu or auto")
    if str(device) not in ("cpu",) and not str(device).startswith("cuda"):
        raise PnPError(f"unknown device '{device}'; use auto, cpu or cuda")
    return torch.device(device)


def solver_params(solver_cfg: dict, prior_cfg: dict, op_name: str | None = None) -> dict:
    """Solver keyword arguments: the solver config's values; a null value takes the prior's
    recommendation for this operator (``prior.solvers.by_op.<op>.<solver>.<key>``), else for
    any operator (``prior.solvers.<solver>.<key>``), else the solver's own default.

    A recommended count of iterations (``ITERATION_COUNTS``) keeps its share of the recommended
    run when the user sets ``solver.iterations``: DAEP's mean of the last 48 of 240 iterates is
    the last 6 of a 30-iteration run."""
    name = solver_cfg["name"]
    solvers = prior_cfg.get("solvers") or {}
    by_op = ((solvers.get("by_op") or {}).get(op_name) or {}).get(name) or {}
    recommended = {**(solvers.get(name) or {}), **by_op}
    params = {k: v for k, v in solver_cfg.items() if k != "name"}
    own_iterations, planned = params.get("iterations"), recommended.get("iterations")
    for key, value in recommended.items():
        if params.get(key) is None:
            if key in ITERATION_COUNTS and own_iterations is not None and planned:
                value = round(value * own_iterations / planned)
            params[key] = value
    return {k: v for k, v in params.items() if v is not None}


def build_triple(cfg) -> tuple[object, object]:
    """Check compatibility (before any work), then build the prior and the solver."""
    prior_cfg, solver_cfg = plain(cfg.prior), plain(cfg.solver)
    check_compatible(prior_cfg["name"], solver_cfg["name"])
    op_name = cfg.op.get("name") if "op" in cfg else None
    check_operator(solver_cfg["name"], op_name)
    params = {k: v for k, v in prior_cfg.items() if k not in RESERVED_PRIOR_KEYS}
    if prior_cfg.get("presets") is not None:
        allowed = set(PRIORS.get(prior_cfg["name"]).auto_keys)
        params["preset"] = select(prior_cfg["presets"], op_name, prior_cfg["name"], allowed)
    prior = PRIORS.build(prior_cfg["name"], **params)
    solver = SOLVERS.build(solver_cfg["name"], **solver_params(solver_cfg, prior_cfg, op_name))
    return prior, solver


def _monitor(solver, problem: Problem, progress: bool, desc: str, log_every: int | str = "auto"):
    return Monitor(total=solver.iterations, x_true=problem.x_true, progress=progress, desc=desc,
                   residual=problem.residual, log_every=log_every)


def solve_problem(problem: Problem, prior, solver, progress: bool = True, desc: str = "", monitor=None,
                  log_every: int | str = "auto"):
    """Run ``solver`` on ``problem`` with ``prior``; return (restored, metrics, convergence rows, extras).

    ``monitor``: a ``pnp.monitor.Monitor`` to use instead of a fresh one (batches: per-image logs);
    ``log_every``: a fresh monitor's row interval (``pnp.monitor``)."""
    prior.to(problem.y.device)
    prior.setup(problem)
    problem = prior.problem_to_solve(problem)
    monitor = monitor if monitor is not None else _monitor(solver, problem, progress, desc, log_every)
    start = time.perf_counter()
    try:
        x = solver.run(problem, prior, monitor)
    finally:
        monitor.close()
    if problem.y.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    x = x.detach().clamp(0, 1)
    if not torch.isfinite(x).all():
        raise PnPError("the solver returned NaN/Inf; lower solver.step or check the prior's parameters")
    metrics = {"seconds": seconds, "iterations": monitor.steps or solver.iterations, "log_every": monitor.log_every,
               "observation_sha256": problem.observation_sha256,
               "restarts": solver.restarts, "diverged": solver.diverged,
               "params": {"prior": prior.params(), "solver": solver.params()}}
    extras = {**prior.outputs, **solver.outputs}
    return x, metrics, monitor.rows, extras


def quality(x: torch.Tensor, problem: Problem, border: int = 0, channel: str = "rgb", extras=None) -> dict:
    """PSNR/SSIM of the restoration and of the operator's baseline (observation, bicubic, ...);
    when the run estimated the blur kernel (``extras["kernel"]``), also ``psnr_aligned`` and
    ``psnr_observed_aligned``, over shifts up to half the kernel size (``metrics.aligned_psnr``)."""
    if problem.x_true is None:
        return {}
    baseline = problem.op.baseline(problem.y).clamp(0, 1)
    ref = problem.x_true
    out = {
        "psnr": float(psnr(x, ref, border, channel).mean()),
        "ssim": float(ssim(x, ref, border, channel).mean()),
        "psnr_observed": float(psnr(baseline, ref, border, channel).mean()),
        "ssim_observed": float(ssim(baseline, ref, border, channel).mean()),
    } if ssim_fits(*ref.shape[-2:], border) else {  # too small for SSIM's window: PSNR only
        "psnr": float(psnr(x, ref, border, channel).mean()),
        "psnr_observed": float(psnr(baseline, ref, border, channel).mean()),
        "skipped_metrics": ["ssim", "ssim_observed"],
    }
    if border > 0 and min(ref.shape[-2:]) > 2 * border:
        out["psnr_border"] = float(psnr_border(x, ref, border, channel).mean())
    kernel = (extras or {}).get("kernel")
    if isinstance(kernel, torch.Tensor):
        radius = max(kernel.shape[-2:]) // 2
        out["psnr_aligned"] = float(aligned_psnr(x, ref, border, channel, radius).mean())
        out["psnr_observed_aligned"] = float(aligned_psnr(baseline, ref, border, channel, radius).mean())
    return out


def _observed_picture(problem: Problem) -> torch.Tensor:
    """The observation if it is an image, else the operator's baseline (e.g. compressed sensing)."""
    y = problem.y
    if y.dim() == 4 and y.shape[1] in (1, 3):
        return y
    return problem.op.baseline(y)


def save_outputs(outdir: Path, x: torch.Tensor, problem: Problem, extras: dict, rows: list[dict]) -> dict:
    """Write observed/restored/ground_truth PNGs, extra images, convergence.csv; return scalar extras."""
    save_image(_observed_picture(problem), outdir / "observed.png")
    save_image(x, outdir / "restored.png")
    if problem.x_true is not None:
        save_image(problem.x_true, outdir / "ground_truth.png")
    scalars = {}
    for key, value in extras.items():
        if isinstance(value, torch.Tensor) and value.dim() == 4 and value.shape[0] > 1:
            for i, item in enumerate(value):
                save_image(item, outdir / key / f"{i:03d}.png")
        elif isinstance(value, torch.Tensor) and value.dim() >= 2:
            save_image(value, outdir / f"{key}.png")
        elif hasattr(value, "shape") and getattr(value, "ndim", 0) == 3:  # an H x W x 3 uint8 picture
            save_image(value, outdir / f"{key}.png")
        else:
            scalars[key] = value
    save_csv(rows or [{"iteration": 0}], outdir / "convergence.csv")
    return scalars


def run(cfg, outdir: str | Path, progress: bool = True) -> dict:
    """Restore the image of ``cfg.image`` (the built-in image when null) into ``outdir``:
    observed, restored and ground-truth PNGs, ``convergence.csv`` and ``metrics.json`` (the
    quality, the run's parameters and what it was asked, returned too)."""
    outdir = Path(outdir)
    device = resolve_device(cfg.get("device", "auto"))
    prior, solver = build_triple(cfg)
    images = list_images(cfg.image) if cfg.get("image") else [default_image()]
    if len(images) != 1:
        raise PnPError(f"image={cfg.image} is a folder of {len(images)} images: restore it with "
                       f"python -m pnp or pnp.job.run (a suite of one problem)")
    path = images[0]
    op_cfg, noise_cfg = plain(cfg.op), plain(cfg.noise)
    border, channel = metric_border(cfg.metrics.border, op_cfg), str(cfg.metrics.channel)
    x_true = load_image(path)
    problem = make_problem(x_true, op_cfg, noise_cfg, seed=cfg.seed, device=device)
    x, metrics, rows, extras = solve_problem(problem, prior, solver, progress, desc=path.name,
                                             log_every=cfg.get("log_every", "auto"))
    scalars = save_outputs(outdir, x, problem, extras, rows)
    result = {**quality(x, problem, border, channel, extras), **metrics, **scalars,
              "prior": cfg.prior.name, "op": cfg.op.name, "solver": cfg.solver.name,
              "image": str(path), "seed": int(cfg.seed), "noise_sigma": problem.sigma * 255.0,
              "border": border, "channel": channel}
    save_json(result, outdir / "metrics.json")
    return result
