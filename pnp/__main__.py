"""``python -m pnp``: the Hydra command line, a thin layer over ``pnp.job.run`` (one run) and
``pnp.sweep.run_job`` (one job of a multirun).

A user error (PnPError) prints one line on stderr and exits with code 2; in a multirun sweep
the job records it (``status.json``: skipped for an incompatible triple, failed otherwise)
and the sweep goes on. Ctrl-C prints one line and exits with code 130. A run folder that
received no work is removed (with the ``outputs/<date>`` folder above it when left empty); a
run folder holding an earlier run's results is not written into unless ``overwrite=true``.

The run machinery (``pnp.job``, ``pnp.sweep``: torch's networks, deepinv) is imported once the
command line has been checked, so that ``--help`` and a one-line error answer at once, and
before Hydra creates the run folder, so that Ctrl-C while it loads leaves nothing behind.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from pnp.choices import check_choices, check_plugins
from pnp.errors import PnPError
from pnp.io import FolderInUse, default_layout_parents, discard_run_dir, folder_lock, holds_results
from pnp.validate import check_keys

HELP_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i"}


def _flag(argv: list[str], key: str) -> bool:
    return any(a.partition("=")[0] == key and a.partition("=")[2].strip().lower() == "true" for a in argv)


def check_run_dir(argv: list[str]) -> None:
    """Refuse, before Hydra writes its ``.hydra/`` there, a ``hydra.run.dir`` holding results."""
    if "-m" in argv or "--multirun" in argv or _flag(argv, "overwrite"):
        return
    for arg in argv:
        key, _, value = arg.partition("=")
        if key == "hydra.run.dir" and "${" not in value and holds_results(value):
            raise PnPError(_reuse_message(value))


def _reuse_message(outdir) -> str:
    return (f"hydra.run.dir={outdir} holds an earlier run's results; set overwrite=true to write over them, "
            f"or choose another folder")


def report_lines(result: dict, outdir: str | Path) -> list[str]:
    """What ``python -m pnp`` prints on stdout when a run ends: one line per restored image
    (its file, PSNR observed -> restored when the ground truth is known, solver, iterations,
    seconds; flagged when the restored image is further from the truth than the observation)
    and, for several images, their mean."""
    outdir = Path(outdir)
    entries = result.get("images") if isinstance(result.get("images"), list) else [result]

    def line(path: str, e: dict, seconds_label: str = "s") -> str:
        quality = f"PSNR {e['psnr_observed']:.2f} -> {e['psnr']:.2f} dB  " \
            if isinstance(e.get("psnr"), (int, float)) and isinstance(e.get("psnr_observed"), (int, float)) else ""
        solver = f"{e['solver']}  " if e.get("solver") else ""
        iterations = f"{e['iterations']:.0f} it  " if isinstance(e.get("iterations"), (int, float)) else ""
        diverged = "  DIVERGED: the best iterate, see the warning" if e.get("diverged") is True else \
            f"  ({e['restarts']} restart(s))" if isinstance(e.get("restarts"), int) and e["restarts"] > 0 else ""
        below = "  BELOW THE OBSERVATION: these settings do not suit this problem" \
            if quality and e["psnr"] < e["psnr_observed"] else ""
        return f"{path}  {quality}{solver}{iterations}{e.get('seconds', 0.0):.1f} {seconds_label}{diverged}{below}"

    lines = []
    for e in entries:
        folder = outdir / e["outdir"] if e.get("outdir") else outdir
        label = f"  [{e['problem_label']}]" if e.get("problem_label") else ""
        lines.append(line(_shown(folder / "restored.png"), e) + label)
    if len(entries) > 1:
        mean = {**result.get("mean", {}), "solver": entries[0].get("solver")}
        lines.append(line(f"mean of {len(entries)} images", mean, "s/image") + f"  ({_shown(outdir / 'metrics.json')})")
    if result.get("table"):  # an experiment: our numbers beside the paper's
        lines.append(f"table: {_shown(Path(result['table']))}")
    return lines


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it is below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def _task(cfg) -> None:
    from pnp import job, sweep  # the run machinery, loaded by main() already (module docstring)

    hydra_cfg = HydraConfig.get()
    outdir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return sweep.run_job(cfg, outdir)  # the job's mean PSNR: the objective of hydra/sweeper=tune
    progress = bool(cfg.get("progress", True))
    try:
        with folder_lock(outdir, "run folder"):
            if holds_results(outdir) and cfg.get("overwrite") is not True:
                raise FolderInUse(_reuse_message(outdir))
            result = job.run(cfg, outdir, progress=progress)
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
        print("\n".join(report_lines(result, outdir)), flush=True)


def main() -> None:
    try:
        argv = sys.argv[1:]
        check_choices(argv)
        check_plugins(argv)  # a launcher/sweeper that is not installed: one line
        check_keys(argv)  # a misspelled key, with the closest valid one
        check_run_dir(argv)
        if not HELP_FLAGS & set(argv):
            import pnp.job  # noqa: F401 - the run machinery, before a run folder exists (module docstring)
            import pnp.sweep  # noqa: F401
        hydra.main(config_path="pkg://pnp.conf", config_name="config", version_base=None)(_task)()
    except PnPError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # outside a run (in a sweep, its jobs resume on a re-run)
        print("interrupted (Ctrl-C)", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
