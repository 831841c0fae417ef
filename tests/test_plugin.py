"""A third-party prior, installed as a package, works through the real CLI with no edit here."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli

PLUGIN = REPO / "examples" / "pnp-example-plugin"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(PLUGIN)], check=True, capture_output=True)
    return target


def _env(plugin_path):
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(plugin_path), os.environ.get("PYTHONPATH")]))}


def test_plugin_prior_runs_through_cli(tmp_path, color_png, plugin_path):
    out = tmp_path / "run"
    res = run_cli("prior=tikhonov", "op=blur", "op.kernel=gaussian", "op.kernel_size=7", f"image={color_png}",
                  f"hydra.run.dir={out}", cwd=tmp_path, env=_env(plugin_path))
    assert res.returncode == 0, res.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["prior"] == "tikhonov" and m["solver"] == "gd"
    assert m["psnr"] > m["psnr_observed"] + 0.5


def test_plugin_prior_listed_and_checked(tmp_path, plugin_path):
    res = run_cli("--help", cwd=tmp_path, env=_env(plugin_path))
    assert "tikhonov" in res.stdout
    res = run_cli("prior=tikhonov", "solver=fista", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
                  env=_env(plugin_path))
    assert res.returncode == 2
    assert "incompatible: solver 'fista' needs prox" in res.stderr and "solvers that fit 'tikhonov'" in res.stderr
