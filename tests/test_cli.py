"""End-to-end runs through the real command line, and every bad-input case of the spine."""
import json

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli

FAST = ["solver.iterations=15", "op.kernel=gaussian", "op.kernel_size=7", "op.kernel_sigma=1.2"]


def test_cli_restores_and_writes_all_outputs(tmp_path, color_png):
    out = tmp_path / "run"
    res = run_cli("prior=tv", "op=blur", f"image={color_png}", f"hydra.run.dir={out}", *FAST, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for name in ("observed.png", "restored.png", "ground_truth.png", "metrics.json", "convergence.csv"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    for key in ("psnr", "ssim", "psnr_observed", "seconds", "iterations", "prior", "op", "solver",
                "image", "seed", "observation_sha256"):
        assert key in m, key
    assert m["prior"] == "tv" and m["solver"] == "fista" and m["op"] == "blur"
    assert m["psnr"] > m["psnr_observed"] + 1.0
    rows = (out / "convergence.csv").read_text().splitlines()
    assert rows[0].startswith("iteration") and len(rows) == 16


def test_cli_default_image_from_any_directory(tmp_path):
    res = run_cli("prior=tv", "op=denoise", "noise.sigma=25", "solver.iterations=5",
                  f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["image"].endswith("astronaut.png") and m["psnr"] > m["psnr_observed"]


def test_cli_folder_of_images_gray_and_16bit(tmp_path, color_png, gray_png):
    folder = tmp_path / "imgs"
    folder.mkdir()
    color_png.rename(folder / "a.png")
    gray_png.rename(folder / "b.png")
    arr16 = (np.asarray(Image.open(folder / "b.png"), dtype=np.uint16) * 257)
    Image.fromarray(arr16).save(folder / "c.tif")
    out = tmp_path / "run"
    res = run_cli("prior=tv", "op=blur", f"image={folder}", f"hydra.run.dir={out}", *FAST, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["images"]) == 3 and "psnr" in m["mean"]
    assert (out / "b" / "restored.png").is_file() and (out / "c" / "restored.png").is_file()
    # the 16-bit copy of the gray image gives the same problem and result as the 8-bit one
    b, c = m["images"][1], m["images"][2]
    assert b["observation_sha256"] == c["observation_sha256"]


def test_cli_help_lists_groups_and_options(tmp_path):
    res = run_cli("--help", cwd=tmp_path)
    assert res.returncode == 0
    for word in ("prior:", "op:", "solver:", "noise:", "tv", "blur", "fista", "gaussian"):
        assert word in res.stdout, word


def test_same_problem_gives_identical_observation_across_priors_and_solvers(tmp_path, color_png):
    hashes = set()
    for i, extra in enumerate((["solver=fista"], ["solver=gd"], ["solver=admm"])):
        out = tmp_path / f"run{i}"
        res = run_cli("prior=tv", "op=blur", f"image={color_png}", f"hydra.run.dir={out}", "seed=3",
                      *FAST, "solver.iterations=3", *extra, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        hashes.add(json.loads((out / "metrics.json").read_text())["observation_sha256"])
    assert len(hashes) == 1


BAD = [
    (["image=/nonexistent/x.png"], "image not found"),
    (["prior=nosuchprior"], "unknown prior 'nosuchprior'; known:"),
    (["op=nosuchop"], "unknown op 'nosuchop'; known:"),
    (["solver=nosuch"], "unknown solver 'nosuch'; known:"),
    (["op.kernel=gaussian", "op.kernel_size=41"], "larger than the image"),
    (["noise.sigma=-1"], "noise.sigma must be >= 0"),
    (["op=sr", "op.scale=1"], "scale"),
    (["solver.iterations=0"], "iterations"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_one_line_nonzero_exit_nothing_left(tmp_path, color_png, args, message):
    out = tmp_path / "run"
    res = run_cli("prior=tv", "op=blur", f"image={color_png}", f"hydra.run.dir={out}", *args, cwd=tmp_path)
    assert res.returncode != 0
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert not out.exists()


def test_bad_image_files(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    floaty = tmp_path / "float.tif"
    Image.fromarray(np.zeros((16, 16), np.float32), mode="F").save(floaty)
    for path, message in ((bad, "cannot read image"), (floaty, "unsupported image mode")):
        res = run_cli("prior=tv", f"image={path}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
        assert res.returncode == 2 and res.stderr.startswith("error: ") and message in res.stderr, res.stderr
        assert "Traceback" not in res.stderr


def test_log_every_thins_the_convergence_log_and_is_recorded(tmp_path, color_png):
    out = tmp_path / "run"
    result = run_cli(f"image={color_png}", "prior=tv", "op=denoise", "solver.iterations=7", "log_every=3",
                     "progress=false", f"hydra.run.dir={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = (out / "convergence.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == [3, 6, 7]  # every third iteration and the last
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["log_every"] == 3 and metrics["iterations"] == 7
