"""Python API: ``restore(image, op=..., prior=..., solver=..., **overrides)``.

The same config composition and code path as the command line (``pnp.runner``); keyword
overrides use Hydra's dotted names, e.g. ``restore(x, prior="tv", **{"solver.iterations": 50})``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from pnp.choices import check_choices
from pnp.errors import PnPError
from pnp.io import default_image, load_image
from pnp.problem import OPERATOR_STREAM, Problem, make_problem
from pnp.protocol import metric_border
from pnp.records import plain
from pnp.registry import OPERATORS
from pnp.seeding import generator
from pnp.validate import check_keys, check_measurable, check_tensor, validate_config


def compose_config(op: str = "blur", prior: str = "tv", solver: str | None = None,
                   noise: str | None = None, overrides: dict | None = None):
    """Compose ``pnp.conf/config.yaml`` with these choices (plugin config paths included)."""
    args = [f"op={op}", f"prior={prior}"]
    args += [f"solver={solver}"] if solver else []
    args += [f"noise={noise}"] if noise else []
    args += [f"{k}={_hydra_value(v)}" for k, v in (overrides or {}).items()]
    check_choices(args)
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="pnp.conf", version_base=None):
            cfg = compose(config_name="config", overrides=args)
    except Exception:
        check_keys(args)  # a misspelled key: one line with the closest valid key
        raise
    return cfg


def _hydra_value(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_hydra_value(i) for i in v) + "]"
    return "null" if v is None else str(v)


def restore(image: str | Path | torch.Tensor | None = None, op: str = "blur", prior: str = "tv",
            solver: str | None = None, noise: str | None = None, observed: bool = False,
            progress: bool = False, **overrides) -> tuple[torch.Tensor, dict]:
    """Restore one image; return (restored 1 x C x H x W tensor in [0, 1], metrics dict).

    ``image`` is a path or a float tensor (B x C x H x W or C x H x W, values in [0, 1]; None =
    the built-in image; a uint8, 0-255, H x W x C, empty or NaN tensor is refused). By
    default it is the ground truth, degraded by ``op`` and ``noise`` with ``seed``; with
    ``observed=True`` it is the observation y itself (of the same shape as the image, e.g.
    denoise, inpaint, demosaic, circular blur) and no reference metrics are computed.
    """
    # Deferred on purpose: ``import pnp`` (and so ``python -m pnp --help``) does not load
    # deepinv and the networks' code, which only a restoration needs.
    from pnp.runner import build_triple, quality, resolve_device, solve_problem

    cfg = compose_config(op, prior, solver, noise, overrides)
    validate_config(cfg)
    device = resolve_device(cfg.device)
    if isinstance(image, torch.Tensor):
        x = check_tensor(image, observed=observed)
    elif image is None or isinstance(image, (str, Path)):
        x = load_image(image or default_image())
    else:
        raise PnPError(f"image must be a path or a torch.Tensor, got {type(image).__name__}")
    if not observed:
        check_measurable({"image": tuple(x.shape[-2:])}, metric_border(cfg.metrics.border, plain(cfg.op)),
                         cfg.metrics.border, cfg.op.name)
    prior_obj, solver_obj = build_triple(cfg)
    if observed:
        op_cfg = plain(cfg.op)
        operator = OPERATORS.build(op_cfg.pop("name"), shape=tuple(x.shape[1:]),
                                   generator=generator(cfg.seed, OPERATOR_STREAM), **op_cfg)
        sigma = float(cfg.noise.get("sigma", 0.0) or 0.0) / 255.0
        problem = Problem(y=x.float(), op=operator, sigma=sigma, seed=int(cfg.seed)).to(device)
    else:
        problem = make_problem(x, plain(cfg.op), plain(cfg.noise), seed=cfg.seed, device=device)
    restored, metrics, rows, extras = solve_problem(problem, prior_obj, solver_obj, progress,
                                                    log_every=cfg.get("log_every", "auto"))
    border = metric_border(cfg.metrics.border, plain(cfg.op))
    metrics.update(quality(restored, problem, border, str(cfg.metrics.channel), extras))
    metrics.update({"prior": cfg.prior.name, "op": cfg.op.name, "solver": cfg.solver.name,
                    "seed": int(cfg.seed), "convergence": rows})
    metrics.update({k: v for k, v in extras.items() if not isinstance(v, torch.Tensor)})
    return restored, metrics
