"""``python -m pnp``: the Hydra command line, a thin layer over ``pnp.runner.run``.

A user error (PnPError) prints one line on stderr and exits with code 2; in a multirun sweep
the job records it (``status.json``: skipped for an incompatible triple, failed otherwise)
and the sweep goes on.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from pnp.errors import PnPError

GROUP_REGISTRIES = ("prior", "op", "solver", "noise")


def _known(group: str) -> list[str]:
    from pnp.noise import NOISES
    from pnp.registry import OPERATORS, PRIORS, SOLVERS

    return {"prior": PRIORS, "op": OPERATORS, "solver": SOLVERS}[group].names() if group != "noise" \
        else sorted([*NOISES, "none"])


def _config_names(group: str, argv: list[str]) -> set[str]:
    """Config files of the group (e.g. a tuned prior, pnp.tune), in pnp's or a --config-dir folder."""
    from pnp.tune import config_names

    return config_names(group, argv)


def check_choices(argv: list[str]) -> None:
    """Catch an unknown prior/op/solver/noise name before Hydra does, with a one-line error."""
    for arg in argv:
        group, sep, value = arg.partition("=")
        if sep and group in GROUP_REGISTRIES:
            for name in value.split(","):
                if name and name not in _known(group) and not name.startswith(("choice(", "range(", "glob(")) \
                        and name not in _config_names(group, argv):
                    raise PnPError(f"unknown {group} '{name}'; known: {', '.join(_known(group))}")


def _only_hydra_files(outdir: Path) -> bool:
    return outdir.is_dir() and all(p.name == ".hydra" or p.suffix == ".log" for p in outdir.iterdir())


def _task(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from pnp.runner import run

    hydra_cfg = HydraConfig.get()
    outdir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        from pnp.sweep import run_job

        return run_job(cfg, outdir)  # the job's mean PSNR: the objective of hydra/sweeper=tune
    progress = bool(cfg.get("progress", True))
    try:
        result = run(cfg, outdir, progress=progress)
    except PnPError as err:
        if _only_hydra_files(outdir):  # leave nothing behind from a run that did no work
            shutil.rmtree(outdir, ignore_errors=True)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if progress:  # progress=false: quiet
        from pnp.runner import report_lines

        print("\n".join(report_lines(result, outdir)), flush=True)


def main() -> None:
    import hydra

    try:
        check_choices(sys.argv[1:])
        from pnp.sweep import check_plugins  # a launcher/sweeper that is not installed: one line

        check_plugins(sys.argv[1:])
    except PnPError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    hydra.main(config_path="pkg://pnp.conf", config_name="config", version_base=None)(_task)()


if __name__ == "__main__":
    main()
