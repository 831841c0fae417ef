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

Also here: the end-of-sweep report callback.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import sys
import time
import traceback
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback

from pnp.benchmark import fingerprint
from pnp.errors import PnPError
from pnp.io import FolderInUse, folder_lock, save_json
from pnp.job import run
from pnp.records import read_json
from pnp.report import write_report

log = logging.getLogger("pnp.sweep")

KEEP = (".hydra", ".lock")  # Hydra's files for this job and its lock: never moved aside


def _job_info() -> tuple[list[str], int | None, object]:
    """(task overrides, job number, launcher config) of the running Hydra job."""
    try:
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
    outdir = Path(outdir)
    overrides, num, launcher = _job_info()
    if not cfg.get("threads"):
        threads = default_threads(launcher)
        if threads:
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
    record = {"status": "running", "job": num, "overrides": overrides, "fingerprint": fp,
              "threads": torch.get_num_threads(),
              "runs": (previous.get("runs", 0) if same else 0) + 1, "host": socket.gethostname(),
              "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    save_json(record, status_path)
    start = time.perf_counter()
    result = None
    try:
        result = run(cfg, outdir, progress=False)
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
        atexit.register(_release_sweep_lock)  # also when the sweep stops on an error or Ctrl-C

    def on_multirun_end(self, config, **kwargs) -> None:
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
