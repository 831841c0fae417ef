"""``python -m pnp``: the Hydra command line, a thin layer over ``pnp.runner.run``.

A user error (PnPError) prints one line on stderr and exits with code 2; in a multirun sweep
the job records it (``status.json``: skipped for an incompatible triple, failed otherwise)
and the sweep goes on. Ctrl-C prints one line and exits with code 130. A run folder that
received no work is removed (with the ``outputs/<date>`` folder above it when left empty); a
run folder holding an earlier run's results is not written into unless ``overwrite=true``.
"""
from __future__ import annotations

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


def _flag(argv: list[str], key: str) -> bool:
    return any(a.partition("=")[0] == key and a.partition("=")[2].strip().lower() == "true" for a in argv)


def check_run_dir(argv: list[str]) -> None:
    """Refuse, before Hydra writes its ``.hydra/`` there, a ``hydra.run.dir`` holding results."""
    from pnp.io import holds_results

    if "-m" in argv or "--multirun" in argv or _flag(argv, "overwrite"):
        return
    for arg in argv:
        key, _, value = arg.partition("=")
        if key == "hydra.run.dir" and "${" not in value and holds_results(value):
            raise PnPError(_reuse_message(value))


def _reuse_message(outdir) -> str:
    return (f"hydra.run.dir={outdir} holds an earlier run's results; set overwrite=true to write over them, "
            f"or choose another folder")


def _task(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from pnp.io import FolderInUse, default_layout_parents, discard_run_dir, folder_lock, holds_results
    from pnp.sweep import run_checked

    hydra_cfg = HydraConfig.get()
    outdir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        from pnp.sweep import run_job

        return run_job(cfg, outdir)  # the job's mean PSNR: the objective of hydra/sweeper=tune
    progress = bool(cfg.get("progress", True))
    try:
        with folder_lock(outdir, "run folder"):
            if holds_results(outdir) and cfg.get("overwrite") is not True:
                raise FolderInUse(_reuse_message(outdir))
            result = run_checked(cfg, outdir, progress=progress)
    except FolderInUse as err:  # another run's folder: leave it as it is
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except PnPError as err:
        discard_run_dir(outdir, default_layout_parents(outdir))  # leave nothing behind from a run that did no work
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        if discard_run_dir(outdir, default_layout_parents(outdir)):
            print("interrupted (Ctrl-C); nothing was written", file=sys.stderr)
        else:
            print(f"interrupted (Ctrl-C); what was finished is in {outdir}", file=sys.stderr)
        sys.exit(130)
    except Exception:
        discard_run_dir(outdir, default_layout_parents(outdir))
        raise
    if progress:  # progress=false: quiet
        from pnp.runner import report_lines

        print("\n".join(report_lines(result, outdir)), flush=True)


def main() -> None:
    import hydra

    try:
        argv = sys.argv[1:]
        check_choices(argv)
        from pnp.sweep import check_plugins  # a launcher/sweeper that is not installed: one line
        from pnp.validate import check_keys

        check_plugins(argv)
        check_keys(argv)  # a misspelled key, with the closest valid one
        check_run_dir(argv)
        if not {"--help", "-h", "--hydra-help", "--info", "-i"} & set(argv):
            import pnp.runner  # noqa: F401 - the heavy imports (torch, deepinv) before a run folder exists
        hydra.main(config_path="pkg://pnp.conf", config_name="config", version_base=None)(_task)()
    except PnPError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # outside a run (in a sweep, its jobs resume on a re-run)
        print("interrupted (Ctrl-C)", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
