"""One job of a multirun sweep, made safe to interrupt and to re-run.

``run_job`` runs one point of the sweep matrix in its folder ``SWEEP_DIR/<job number>``:

- it writes ``status.json`` first (``running``, the job's overrides and config fingerprint)
  and last (``done``, ``skipped`` for an incompatible triple, ``failed`` for any error, with
  the reason); a failure is recorded and the sweep goes on;
- one process at a time writes into a sweep folder (a lock taken when the multirun starts) and
  into a job folder (a lock around the job): a second writer is refused with one line naming the
  running process; a lock left by a killed process is taken over;
- a re-run of the same sweep skips a job whose status is ``done`` with the same fingerprint
  and a readable ``metrics.json``; a job killed half-way resumes its suite where it stopped
  (``pnp.benchmark``); a folder holding another configuration's outputs (the sweep matrix
  changed, so job numbers shifted) is moved aside to ``SWEEP_DIR/.replaced/`` and re-run.

Also here: the end-of-sweep report callback, and the check that a launcher or sweeper named
on the command line is installed.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import socket
import sys
import time
import traceback
from pathlib import Path

from hydra.experimental.callback import Callback

# Config keys that change speed or logging, never results: left out of a job's fingerprint
# (pnp.benchmark) and of a method's name in the report (pnp.report).
VOLATILE_KEYS = ("progress", "threads", "sweep", "batch_size", "batch_pixels", "overwrite", "skip_unreadable")

from pnp.errors import PnPError
from pnp.io import FolderInUse, folder_lock, save_json, skipped_images, skipping_unreadable

log = logging.getLogger("pnp.sweep")

KEEP = (".hydra", ".lock")  # Hydra's files for this job and its lock: never moved aside


def _job_info() -> tuple[list[str], int | None, object]:
    """(task overrides, job number, launcher config) of the running Hydra job."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        return list(hc.overrides.task), hc.job.get("num"), hc.launcher
    except Exception:  # not inside Hydra (tests calling run_job directly)
        return [], None, None


def default_threads(launcher) -> int | None:
    """One share of the CPUs per parallel job: CPUs // n_jobs (joblib), or SLURM's cpus-per-task."""
    n_jobs = launcher.get("n_jobs") if launcher is not None else None
    if n_jobs and int(n_jobs) > 0:
        return max(1, (os.cpu_count() or 1) // int(n_jobs))
    if os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():
        return int(os.environ["SLURM_CPUS_PER_TASK"])
    return None


def read_json(path: Path):
    """The parsed file, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def is_complete(outdir: Path, fp: str) -> bool:
    """Done, with this same configuration, and its metrics readable."""
    status = read_json(outdir / "status.json")
    return (isinstance(status, dict) and status.get("status") == "done" and status.get("fingerprint") == fp
            and isinstance(read_json(outdir / "metrics.json"), dict))


def objective(metrics) -> float | None:
    """The value a tuning sweeper maximizes: the mean PSNR of the job."""
    if not isinstance(metrics, dict):
        return None
    value = (metrics.get("mean") or metrics).get("psnr")
    return float(value) if isinstance(value, (int, float)) else None


def _set_aside(outdir: Path) -> None:
    """Move another configuration's outputs to SWEEP_DIR/.replaced/<job>-<time>/ (nothing is deleted)."""
    stale = [p for p in outdir.iterdir() if p.name not in KEEP and p.suffix != ".log"]
    if not stale:
        return
    target = outdir.parent / ".replaced" / f"{outdir.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    target.mkdir(parents=True)
    for p in stale:
        shutil.move(str(p), str(target / p.name))
    log.info("job %s: outputs of another configuration moved to %s", outdir.name, target)


def run_checked(cfg, outdir: Path, progress: bool) -> dict:
    """``pnp.runner.run`` after the checks that need no solving (``pnp.validate.check_run``);
    with ``skip_unreadable=true``, the unreadable files of the image folder are left out, listed
    in ``metrics.json`` (``skipped_images``) and in one warning line."""
    from pnp.runner import run
    from pnp.validate import check_run

    with skipping_unreadable(bool(cfg.get("skip_unreadable", False))):
        check_run(cfg)
        skipped = skipped_images()
        if skipped:
            names = ", ".join(Path(p).name for p in skipped)
            print(f"warning: {len(skipped)} unreadable image(s) left out (skip_unreadable=true): {names}",
                  file=sys.stderr, flush=True)
        result = run(cfg, outdir, progress=progress)
    if skipped and isinstance(result, dict):
        result["skipped_images"] = skipped
        save_json(result, Path(outdir) / "metrics.json")
    return result


def run_job(cfg, outdir: Path) -> float | None:
    """Run one sweep job in ``outdir``; return its mean PSNR (None when skipped or failed)."""
    outdir = Path(outdir)
    try:
        with folder_lock(outdir, "sweep job folder"):
            return _run_job(cfg, outdir)
    except FolderInUse as err:  # the same job of the same sweep folder, run elsewhere: not twice
        print(f"job {outdir.name}: not run here: {err}", file=sys.stderr)
        return None


def _run_job(cfg, outdir: Path) -> float | None:
    from pnp.benchmark import fingerprint

    outdir = Path(outdir)
    overrides, num, launcher = _job_info()
    if not cfg.get("threads"):
        threads = default_threads(launcher)
        if threads:
            import torch

            torch.set_num_threads(threads)
    fp = fingerprint(cfg)
    status_path = outdir / "status.json"
    if is_complete(outdir, fp):
        log.info("job %s: complete, not re-run (%s)", outdir.name, " ".join(overrides))
        return objective(read_json(outdir / "metrics.json"))
    previous = read_json(status_path)
    same = isinstance(previous, dict) and previous.get("fingerprint") == fp
    if not same and outdir.is_dir():
        _set_aside(outdir)
    import torch

    record = {"status": "running", "job": num, "overrides": overrides, "fingerprint": fp,
              "threads": torch.get_num_threads(),
              "runs": (previous.get("runs", 0) if same else 0) + 1, "host": socket.gethostname(),
              "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    save_json(record, status_path)
    start = time.perf_counter()
    result = None
    try:
        result = run_checked(cfg, outdir, progress=False)
        record.update(status="done")
    except PnPError as err:
        kind = "skipped" if str(err).startswith("incompatible") else "failed"
        record.update(status=kind, reason=str(err))
    except Exception as err:  # a bug in one prior must not stop the sweep
        record.update(status="failed", reason=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
    record.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S"), seconds=round(time.perf_counter() - start, 3))
    save_json(record, status_path)  # last: a job is complete only once this says done
    message = f"job {outdir.name} ({' '.join(overrides)}): {record['status']}"
    if record["status"] != "done":
        print(f"{message}: {record['reason']}", file=sys.stderr)
    log.info(message)
    return objective(result)


_sweep_lock = None  # the lock on the sweep folder of the multirun running in this process


def _release_sweep_lock() -> None:
    global _sweep_lock
    lock, _sweep_lock = _sweep_lock, None
    if lock is not None:
        lock.__exit__(None, None, None)


class ReportCallback(Callback):
    """Lock the sweep folder while a multirun writes into it (a second sweep into the same folder
    is refused with one line naming the running process); at the end, release it and summarise
    the sweep folder (``python -m pnp.report``)."""

    def on_multirun_start(self, config, **kwargs) -> None:
        global _sweep_lock
        lock = folder_lock(Path(str(config.hydra.sweep.dir)), "sweep folder")
        try:
            lock.__enter__()
        except FolderInUse as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        _sweep_lock = lock  # held by this process, not by the callback (launchers pickle callbacks)
        import atexit

        atexit.register(_release_sweep_lock)  # also when the sweep stops on an error or Ctrl-C

    def on_multirun_end(self, config, **kwargs) -> None:
        from pnp.report import write_report

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            code = write_report(sweep_dir)
        except PnPError as err:
            print(f"error: {err}", file=sys.stderr)
            code = 2
        finally:
            _release_sweep_lock()
        page = sweep_dir / "report" / "index.html"
        print(f"report: {sweep_dir / 'summary.md'}" + (f"  {page}" if page.is_file() else ""))
        if code:
            sys.exit(code)


# ----------------------------------------------------------------------------- plugin checks

# Launchers and sweepers by config name: (module that provides it, package to install).
PLUGINS = {
    "hydra/launcher": {
        "basic": (None, None),
        "local_parallel": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher"),
        "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher"),
        "slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
        "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
        "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
        "ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher"),
        "ray_aws": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher"),
        "rq": ("hydra_plugins.hydra_rq_launcher", "hydra-rq-launcher"),
    },
    "hydra/sweeper": {
        "basic": (None, None),
        "tune": ("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper"),
        "optuna": ("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper"),
        "ax": ("hydra_plugins.hydra_ax_sweeper", "hydra-ax-sweeper"),
        "nevergrad": ("hydra_plugins.hydra_nevergrad_sweeper", "hydra-nevergrad-sweeper"),
    },
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_plugins(argv: list[str]) -> None:
    """A one-line PnPError for ``hydra/launcher=X`` or ``hydra/sweeper=X`` whose plugin is missing."""
    for arg in argv:
        group, sep, name = arg.lstrip("+").partition("=")
        if not sep or group not in PLUGINS:
            continue
        if name not in PLUGINS[group]:
            continue  # another plugin or a config of the user's: Hydra resolves it
        module, package = PLUGINS[group][name]
        if module and not _installed(module):
            raise PnPError(f"{group}={name} needs the package {package}: pip install {package}")
