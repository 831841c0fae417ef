"""Sweeps through the real command line: parallel and submitit launchers, resume, skipped
triples, the report's observation check, tuning, and a launcher that is not installed."""
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO, run_cli, smooth_image

PLUGIN = REPO / "examples" / "pnp-example-plugin"
FAST = ["solver.iterations=3", "threads=1", "progress=false"]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    """The example plugin (prior=tikhonov: gradient only, so incompatible with fista) on PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(PLUGIN)], check=True, capture_output=True)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("imgs")
    for i in range(2):
        Image.fromarray(smooth_image(24, 3, seed=i)).save(folder / f"im{i}.png")
    return folder


def sweep_args(images, sweep_dir, launcher="local_parallel"):
    return ["-m", "prior=tv,tikhonov", "solver=gd", "solver.step=0.2", "op=denoise,inpaint", f"image={images}",
            *FAST, f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep_dir}"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, env, images):
    """2 priors x 2 operators x 1 solver on two 24x24 images, two jobs at a time."""
    cwd = tmp_path_factory.mktemp("cwd")
    sweep_dir = cwd / "sweep"
    res = run_cli(*sweep_args(images, sweep_dir), cwd=cwd, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return cwd, sweep_dir, res


def status(job: Path) -> dict:
    return json.loads((job / "status.json").read_text())


def test_parallel_sweep_writes_complete_summary(sweep):
    _, sweep_dir, res = sweep
    assert "Joblib.Parallel(n_jobs=2" in res.stdout + res.stderr
    jobs = [sweep_dir / str(i) for i in range(4)]
    assert [status(j)["status"] for j in jobs] == ["done"] * 4
    assert all(status(j)["threads"] == 1 for j in jobs)
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    assert len(rows) == 8 and {r["status"] for r in rows} == {"done"}
    assert {(r["method"], r["problem"]) for r in rows} == {(m, p) for m in ("tv + gd", "tikhonov + gd")
                                                           for p in ("denoise", "inpaint")}
    assert all(r["psnr"] and r["ssim"] and r["observation_sha256"] and r["seconds"] for r in rows)
    md = (sweep_dir / "summary.md").read_text()
    assert "| method | denoise | inpaint | s/image |" in md
    table = [line for line in md.splitlines() if line.startswith(("| tv + gd", "| tikhonov + gd", "| baseline"))]
    assert len(table) == 3 and all("–" not in line.rsplit("|", 2)[0] for line in table[:2])
    for col in (1, 2):  # one best cell in bold per column
        assert sum("**" in line.split("|")[col + 1] for line in table) == 1
    for name in ("crops_denoise.png", "psnr_denoise.png", "crops_inpaint.png", "psnr_inpaint.png"):
        assert (sweep_dir / "figures" / name).is_file()


def test_interrupted_sweep_resumes_without_redoing_finished_jobs(sweep, env, images):
    cwd, sweep_dir, _ = sweep
    # job 3 was killed half-way: status still "running", one image and the job's metrics missing
    record = status(sweep_dir / "3")
    record["status"] = "running"
    (sweep_dir / "3" / "status.json").write_text(json.dumps(record))
    (sweep_dir / "3" / "metrics.json").unlink()
    shutil.rmtree(sweep_dir / "3" / "im1")
    # job 1's folder holds another configuration's outputs (e.g. the matrix changed)
    record = status(sweep_dir / "1")
    record["fingerprint"] = "another"
    (sweep_dir / "1" / "status.json").write_text(json.dumps(record))
    stamps = {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/*/restored.png")}
    # the same sweep, re-run in one process (resuming does not depend on the launcher; faster here)
    res = run_cli(*sweep_args(images, sweep_dir, launcher="basic"), cwd=cwd, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    changed = sorted(str(p.relative_to(sweep_dir)) for p in sweep_dir.glob("*/*/restored.png")
                     if stamps.get(p) != p.stat().st_mtime_ns)
    assert changed == ["1/im0/restored.png", "1/im1/restored.png", "3/im1/restored.png"]
    assert [status(sweep_dir / str(i))["runs"] for i in range(4)] == [1, 1, 1, 2]  # job 1: a new configuration
    assert [status(sweep_dir / str(i))["status"] for i in range(4)] == ["done"] * 4
    replaced = list((sweep_dir / ".replaced").iterdir())
    assert len(replaced) == 1 and (replaced[0] / "im0" / "restored.png").is_file()  # moved aside, not deleted
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    assert len(rows) == 8 and {r["status"] for r in rows} == {"done"}


def test_report_catches_a_planted_observation_mismatch(sweep, tmp_path):
    _, sweep_dir, _ = sweep
    copy = tmp_path / "copy"
    shutil.copytree(sweep_dir, copy)
    metrics = json.loads((copy / "2" / "metrics.json").read_text())
    metrics["images"][0]["observation_sha256"] = "0" * 64
    (copy / "2" / "metrics.json").write_text(json.dumps(metrics))
    res = subprocess.run([sys.executable, "-m", "pnp.report", str(copy), "--no-figures"],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.strip().startswith("error: observation mismatch in 1 (problem, image) pairs")
    md = (copy / "summary.md").read_text()
    assert "OBSERVATION MISMATCH" in md and "denoise / im0.png" in md and "000000000000: tikhonov + gd" in md


def test_incompatible_triple_skipped_on_submitit_local(tmp_path, env, images):
    sweep_dir = tmp_path / "sweep"
    res = run_cli("-m", "prior=tikhonov", "solver=fista,gd", "solver.step=0.2", "op=denoise",
                  f"image={images / 'im0.png'}", *FAST, "hydra/launcher=submitit_local",
                  f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (sweep_dir / ".submitit").is_dir()
    skipped, done = status(sweep_dir / "0"), status(sweep_dir / "1")
    assert skipped["status"] == "skipped" and skipped["reason"].startswith("incompatible: solver 'fista' needs prox")
    assert done["status"] == "done" and (sweep_dir / "1" / "restored.png").is_file()
    md = (sweep_dir / "summary.md").read_text()
    assert "## Skipped (incompatible)" in md and "job 0 (prior=tikhonov solver=fista" in md
    assert "| tikhonov + gd | " in md


def test_tuning_writes_a_prior_config_that_runs(tmp_path, images):
    sweep_dir = tmp_path / "tune"
    res = run_cli("-m", "hydra/sweeper=tune", "hydra.sweeper.n_trials=2", "prior=tv", "op=denoise",
                  f"image={images}", *FAST, "prior.weight=interval(1.0,8.0)", f"hydra.sweep.dir={sweep_dir}",
                  cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    from omegaconf import OmegaConf

    from pnp.tune import main

    best = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert main([str(sweep_dir), "--name", "tv_denoise", "--out", str(tmp_path / "conf")]) == 0
    tuned = OmegaConf.load(tmp_path / "conf" / "prior" / "tv_denoise.yaml")
    assert list(tuned.defaults) == ["tv", "_self_"] and tuned.weight == best.best_params["prior.weight"]
    assert main([str(sweep_dir), "--name", "tv_denoise", "--out", str(tmp_path / "conf")]) == 2  # kept
    run_dir = tmp_path / "run"
    res = run_cli("--config-dir", str(tmp_path / "conf"), "prior=tv_denoise", "op=denoise",
                  f"image={images / 'im0.png'}", *FAST, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    used = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert used.prior.name == "tv" and used.prior.weight == tuned.weight and used.solver.name == "fista"


class Boom:
    """A prior whose every method raises: a bug in one prior."""

    from pnp.capabilities import Capability

    provides = frozenset({Capability.GRADIENT, Capability.PROX})

    def __init__(self, **kwargs):
        pass

    def __getattr__(self, name):
        raise RuntimeError("planted bug in prior boom")


def test_failed_job_records_its_error_and_returns(tmp_path, color_png):
    from omegaconf import open_dict

    from pnp.api import compose_config
    from pnp.registry import PRIORS
    from pnp.sweep import run_job

    PRIORS.register("boom", Boom)
    cfg = compose_config(op="denoise", prior="tv", overrides={"image": str(color_png), "solver.iterations": 2})
    with open_dict(cfg):
        cfg.prior = {"name": "boom"}
    assert run_job(cfg, tmp_path / "job") is None
    record = status(tmp_path / "job")
    assert record["status"] == "failed" and record["reason"] == "RuntimeError: planted bug in prior boom"
    assert "Traceback" in record["traceback"] and record["runs"] == 1


def test_launcher_not_installed_is_one_line(tmp_path):
    res = run_cli("-m", "prior=tv", "hydra/launcher=ray", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == ("error: hydra/launcher=ray needs the package hydra-ray-launcher: "
                                  "pip install hydra-ray-launcher")
    assert not (tmp_path / "multirun").exists()
