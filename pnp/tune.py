"""``python -m pnp.tune SWEEP_DIR``: turn an Optuna tuning sweep into a prior config file.

Tune (``conf/hydra/sweeper/tune.yaml``; the objective is each trial's mean PSNR)::

    python -m pnp -m hydra/sweeper=tune prior=tv op=blur image=TUNING_FOLDER sweep=tune_tv_blur \\
        'prior.weight=tag(log,interval(0.5,50))' 'solver.step=interval(0.3,1)'
    python -m pnp.tune multirun/tune_tv_blur --name tv_blur
    python -m pnp prior=tv_blur op=blur image=photo.png

The file ``prior/<name>.yaml`` extends the tuned prior's own config (its defaults list, so its
default solver too) and sets the best ``prior.*`` values; a best ``solver.<key>`` becomes the
prior's recommendation ``solvers.<solver>.<key>`` (used where the solver config leaves it null).
It is written into pnp's config folder, or ``--out DIR`` (then run with ``--config-dir DIR``);
an existing file is never overwritten without ``--force``.
"""
from __future__ import annotations

import argparse
import sys
from importlib.resources import files
from pathlib import Path

from omegaconf import OmegaConf

from pnp.errors import PnPError
from pnp.io import atomic_write


def package_conf_dir() -> Path:
    return Path(str(files("pnp.conf")))


def config_names(group: str, argv: list[str]) -> set[str]:
    """Config file names of ``group`` in pnp's config folder and in ``--config-dir``/``-cd`` folders."""
    dirs = [package_conf_dir()]
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            dirs.append(Path(argv[i + 1]))
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.partition("=")[2]))
    return {p.stem for d in dirs if (d / group).is_dir() for p in (d / group).glob("*.yaml")}


def _value(text: str):
    """An override's value as YAML reads it (0.5 -> float, true -> bool, abc -> str)."""
    return OmegaConf.create({"v": text}).v if isinstance(text, str) else text


def best_trial(sweep_dir: Path) -> tuple[dict, float, Path | None]:
    """(best params, best value, the folder of the job that ran them) of an Optuna sweep."""
    results = sweep_dir / "optimization_results.yaml"
    if not results.is_file():
        raise PnPError(f"no optimization_results.yaml in {sweep_dir}: run the sweep with hydra/sweeper=tune first")
    try:
        res = OmegaConf.to_container(OmegaConf.load(results))
        params, value = dict(res["best_params"]), float(res["best_value"])
    except Exception as err:
        raise PnPError(f"cannot read {results}: {type(err).__name__}: {err}") from None
    wanted = {f"{k}={v}" for k, v in params.items()}
    jobs = sorted(p for p in sweep_dir.iterdir() if (p / ".hydra" / "overrides.yaml").is_file())
    for job in jobs:
        if wanted <= {str(o) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml")}:
            return params, value, job
    return params, value, jobs[0] if jobs else None


def tuned_config(sweep_dir: Path) -> tuple[str, str, str]:
    """(base prior name, YAML text, operator) of the tuned prior config."""
    params, value, job = best_trial(sweep_dir)
    if job is None:
        raise PnPError(f"no job folders in {sweep_dir}")
    choices = OmegaConf.load(job / ".hydra" / "hydra.yaml").hydra.runtime.choices
    cfg = OmegaConf.load(job / ".hydra" / "config.yaml")
    base, solver = choices.get("prior"), cfg.solver.name
    prior_values, solver_values, ignored = {}, {}, []
    for key, raw in params.items():
        group, _, name = key.partition(".")
        if group == "prior" and name and "." not in name:
            prior_values[name] = _value(raw)
        elif group == "solver" and name and "." not in name:
            solver_values[name] = _value(raw)
        else:
            ignored.append(key)
    if ignored:
        print(f"warning: {', '.join(ignored)} tuned but not a prior.* or solver.* value: left out", file=sys.stderr)
    body = {"defaults": [base, "_self_"], **prior_values}
    if solver_values:
        body["solvers"] = {solver: solver_values}
    images = cfg.get("image") or "the built-in image"
    header = (f"# Tuned by `python -m pnp.tune {sweep_dir}`: mean PSNR {value:.2f} dB on {images},\n"
              f"# op={cfg.op.name}, noise {OmegaConf.to_container(cfg.noise)}, solver {solver}.\n")
    return base, header + OmegaConf.to_yaml(OmegaConf.create(body)), cfg.op.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pnp.tune", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="the folder of a hydra/sweeper=tune multirun")
    parser.add_argument("--name", help="the new prior config's name (default: <prior>_<op>_tuned)")
    parser.add_argument("--out", help="write OUT/prior/NAME.yaml (default: pnp's config folder)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file of that name")
    args = parser.parse_args(argv)
    try:
        base, text, op = tuned_config(Path(args.sweep_dir))
        name = args.name or f"{base}_{op}_tuned"
        if not name.replace("_", "").replace("-", "").isalnum():
            raise PnPError(f"--name must be letters, digits, _ or -, got '{name}'")
        out = Path(args.out) if args.out else package_conf_dir()
        path = out / "prior" / f"{name}.yaml"
        if path.exists() and not args.force:
            raise PnPError(f"{path} exists; choose another --name or pass --force")
        with atomic_write(path, "w") as f:
            f.write(text)
    except PnPError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    use = f"--config-dir {out} " if args.out else ""
    print(f"wrote {path}; use it: python -m pnp {use}prior={name} op={op}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
