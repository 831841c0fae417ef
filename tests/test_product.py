"""What a newcomer meets: the README's commands run, the command line reports what it did, and
the product carries no development log."""
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from conftest import REPO, run_cli, smooth_image

FAST = ["solver.iterations=5", "op.kernel=gaussian", "op.kernel_size=7", "op.kernel_sigma=1.2"]


def _readme_commands() -> list[str]:
    """The shell lines of the README's code blocks marked ``bash``."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def _after_install(command: str) -> str:
    """The part of an ``install && run`` line after the last ``pip install``."""
    parts = [p.strip() for p in command.split("&&")]
    installs = [i for i, p in enumerate(parts) if p.startswith("pip install")]
    assert installs, f"not an install line: {command}"
    return " && ".join(parts[installs[-1] + 1:])


def test_readme_main_job_runs_on_a_tiny_image(tmp_path):
    """The README's first command (install aside): the main job, here on a 48x48 image with 2 iterations."""
    commands = _readme_commands()
    run_line = _after_install(commands[0])
    assert run_line.startswith("python -m pnp ")
    args = shlex.split(run_line)[3:]
    assert {"solver=gd", "prior=daep", "op=blur"} <= set(args)
    image = tmp_path / "tiny.png"
    Image.fromarray(smooth_image(48, 3)).save(image)
    out = tmp_path / "run"
    res = run_cli(*args, f"image={image}", "solver.iterations=2", f"hydra.run.dir={out}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (out / "restored.png").is_file()
    assert "restored.png" in res.stdout and " -> " in res.stdout and "gd" in res.stdout


def test_readme_test_command_is_pytest():
    test_lines = [c for c in _readme_commands() if "pytest" in c]
    assert test_lines and _after_install(test_lines[0]) == "python -m pytest -q"


def test_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 220


def test_cli_reports_one_line_per_image(tmp_path, color_png):
    out = tmp_path / "run"
    res = run_cli("prior=tv", "op=blur", f"image={color_png}", f"hydra.run.dir={out}", *FAST, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, res.stdout
    line = lines[0]
    assert line.startswith("run/restored.png") and "fista" in line and "5 it" in line
    observed, restored = map(float, re.search(r"PSNR ([\d.]+) -> ([\d.]+) dB", line).groups())
    assert restored > observed


def test_cli_reports_a_folder_with_its_mean_and_is_quiet_without_progress(tmp_path, color_png, gray_png):
    folder = tmp_path / "imgs"
    folder.mkdir()
    color_png.rename(folder / "a.png")
    gray_png.rename(folder / "b.png")
    res = run_cli("prior=tv", "op=blur", f"image={folder}", f"hydra.run.dir={tmp_path / 'run'}", *FAST, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 3, res.stdout
    assert lines[0].startswith("run/a/restored.png") and lines[1].startswith("run/b/restored.png")
    assert lines[2].startswith("mean of 2 images") and "run/metrics.json" in lines[2]
    quiet = run_cli("prior=tv", "op=blur", f"image={folder}", f"hydra.run.dir={tmp_path / 'quiet'}",
                    "progress=false", *FAST, cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout.strip() == ""


# ------------------------------------------------------------------ no development log in the product

PRODUCT = ("pnp", "priors", "operators", "solvers", "conf", "docs", "benchmarks", "examples")
SUFFIXES = {".py", ".yaml", ".yml", ".md", ".txt", ".toml", ".cfg"}


def _product_files() -> list[Path]:
    files = [REPO / "README.md", REPO / "CHANGELOG.md"]
    for top in PRODUCT:
        files += [p for p in (REPO / top).rglob("*") if p.suffix in SUFFIXES and p.is_file()
                  and "__pycache__" not in p.parts and ".egg-info" not in str(p)]
    return [p for p in files if p.is_file()]


def test_no_development_log_in_the_product():
    """No "session" (nor "issue N") in the package, configs, README, docs or benchmarks: the
    product says what it does and why, not how it was built."""
    found = []
    for path in _product_files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if re.search(r"\bsessions?\b", line, re.I) or re.search(r"\bissue \d+", line, re.I):
                found.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:100]}")
    assert not found, f"{len(found)} lines:\n" + "\n".join(found[:60])


# ------------------------------------------------------------------ one command per seed table

EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


def test_experiments_exist():
    assert {"daep_sr_set5", "dip_sr_set5", "dip_denoise"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_runs_on_a_tiny_image(tmp_path, name):
    """Each experiment config, on one 64x64 image with 2 iterations: it runs its protocol and
    writes table.md with the paper's numbers beside ours."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(smooth_image(64, 3)).save(folder / "tiny.png")
    out = tmp_path / "run"
    extra = []
    if "kernels" in OmegaConf.load(REPO / "conf" / "experiment" / f"{name}.yaml").get("benchmark", {}):
        (tmp_path / "kernels").mkdir()
        np.save(tmp_path / "kernels" / "k_1.npy", np.full((5, 5), 1 / 25))
        extra = [f"benchmark.kernels={tmp_path / 'kernels'}"]
    res = run_cli(f"+experiment={name}", f"benchmark.images={folder}", "solver.iterations=2", *extra,
                  f"hydra.run.dir={out}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    table = (out / "table.md").read_text()
    assert "| problem | observed | ours | paper |" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| problem")]
    paper = OmegaConf.load(REPO / "conf" / "experiment" / f"{name}.yaml").experiment.paper
    filled = [line for line in rows if line.split("|")[4].strip()]
    assert rows and len(filled) == len(paper)  # every value of the paper has its row beside ours
    assert "table: run/table.md" in res.stdout
