"""Benchmark suites: problems and protocols from the configs, batched and resumable runs."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict
from PIL import Image

from conftest import SHARED, smooth_image
from pnp.api import compose_config
from pnp.benchmark import batch_pixels, chunks, fingerprint, run_suite, suite_tasks, write_experiment_table
from pnp.errors import PnPError
from pnp.io import load_image
from pnp.problem import make_problem, observation_hash

LEVIN = SHARED / "kernels" / "levin"
needs_levin = pytest.mark.skipif(not (LEVIN / "levin_1.npy").is_file(), reason="needs ../shared/data/kernels/levin")


def suite(name, op, **overrides):
    return compose_config(op=op, prior="tv", overrides={"benchmark": name, **overrides})


@pytest.fixture
def images(tmp_path):
    """Two 24x24 colour images and one 20x20: one batch of two, one alone."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, size in enumerate((24, 20, 24)):
        Image.fromarray(smooth_image(size, 3, seed=i)).save(folder / f"im{i}.png")
    return folder


@needs_levin
def test_levin_suite_every_kernel_times_three_noise_levels(tmp_path):
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    for i in (10, 3, 5):  # natural order: 3, 5, 10
        shutil.copy(LEVIN / f"levin_{min(i, 8)}.npy", kernels / f"levin_{i}.npy")
    tasks = suite_tasks(suite("deblur_levin", "blur", **{"benchmark.kernels": str(kernels)}))
    assert [t.id for t in tasks][:4] == ["kernel=levin_3,sigma=2.55", "kernel=levin_3,sigma=7.65",
                                         "kernel=levin_3,sigma=12.75", "kernel=levin_5,sigma=2.55"]
    assert len(tasks) == 9 and tasks[-1].id == "kernel=levin_10,sigma=12.75"
    assert tasks[0].label == "levin_3 σ=2.55"
    assert [t.border for t in tasks[::3]] == [7, 6, 11]  # 15x15, 13x13, 23x23 kernels: half the size
    assert all(t.op["boundary"] == "valid" and t.channel == "rgb" for t in tasks)
    assert tasks[1].noise == {"name": "gaussian", "sigma": 7.65}
    full = suite_tasks(suite("deblur_levin", "blur", **{"benchmark.kernels": str(LEVIN)}))
    assert len(full) == 24


def test_levin_suite_without_kernels_is_one_clear_error():
    with pytest.raises(PnPError, match=r"needs benchmark.kernels=DIR"):
        suite_tasks(suite("deblur_levin", "blur"))
    with pytest.raises(PnPError, match="no such folder"):
        suite_tasks(suite("deblur_levin", "blur", **{"benchmark.kernels": "/nonexistent"}))


@pytest.mark.parametrize("name,op,count,border,channel", [
    ("sr", "sr", 4, "scale", "y"), ("inpaint", "inpaint", 3, 0, "rgb"), ("denoise", "denoise", 3, 0, "rgb"),
    ("cs", "cs", 1, 0, "rgb"), ("demosaic", "demosaic", 1, 0, "rgb")])
def test_every_suite_states_its_problems_and_protocol(name, op, count, border, channel):
    tasks = suite_tasks(suite(name, op))
    assert len(tasks) == count and all(t.op["name"] == op and t.channel == channel for t in tasks)
    assert [t.border for t in tasks] == ([t.op["scale"] for t in tasks] if border == "scale" else [border] * count)


def test_suite_refuses_another_operator():
    with pytest.raises(PnPError, match="benchmark denoise runs op=denoise; drop op=blur"):
        suite_tasks(suite("denoise", "blur"))


def test_chunks_group_same_size_images_in_order(images):
    paths = sorted(images.iterdir())
    assert chunks(paths, 4) == [[(0, paths[0]), (2, paths[2])], [(1, paths[1])]]
    assert chunks(paths, 1) == [[(0, paths[0])], [(1, paths[1])], [(2, paths[2])]]
    many = paths * 5  # 10 of 24x24 and 5 of 20x20, batches of at most 4
    sizes = [len(c) for c in chunks(many, 4)]
    assert sum(sizes) == 15 and max(sizes) == 4
    capped = chunks(many, 4, max_pixels=2 * 24 * 24)  # room for two of either size
    assert sorted(i for c in capped for i, _ in c) == list(range(15)) and max(len(c) for c in capped) == 2
    assert all(len(c) == 1 for c in chunks(many, 4, max_pixels=1))  # a large image still runs, alone


def test_batch_pixels_is_a_cpu_limit_by_default():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert batch_pixels(OmegaConf.create({"batch_pixels": "auto"}), cpu) == 128 * 128
    assert batch_pixels(OmegaConf.create({"batch_pixels": "auto"}), cuda) is None
    assert batch_pixels(OmegaConf.create({"batch_pixels": None}), cpu) is None
    assert batch_pixels(OmegaConf.create({"batch_pixels": 5000}), cpu) == 5000
    for bad in (0, -3, "many", 2.5):
        with pytest.raises(PnPError, match="batch_pixels must be a positive integer"):
            batch_pixels(OmegaConf.create({"batch_pixels": bad}), cpu)


def test_suite_runs_batched_and_resumes(tmp_path, images):
    cfg = suite("denoise", "denoise", **{"benchmark.images": str(images), "solver.iterations": 3})
    out = tmp_path / "job"
    result = run_suite(cfg, out, progress=False)
    assert list(result["problems"]) == ["sigma=15", "sigma=25", "sigma=50"]
    assert len(result["images"]) == 9 and result["benchmark"] == "denoise"
    first = result["images"][0]
    assert first["problem"] == "sigma=15" and first["problem_label"] == "σ=15" and first["outdir"] == "sigma=15/im0"
    assert [e["batch"] for e in result["images"][:3]] == [2, 1, 2]
    for name in ("observed.png", "restored.png", "ground_truth.png", "convergence.csv", "metrics.json"):
        assert (out / "sigma=50" / "im2" / name).is_file()
    rows = (out / "sigma=15" / "im2" / "convergence.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0] == "iteration,objective,psnr"
    # the batched observation is bit-identical to the one of the image alone
    alone = make_problem(load_image(images / "im2.png"), {"name": "denoise"}, {"name": "gaussian", "sigma": 15})
    assert result["images"][2]["observation_sha256"] == observation_hash(alone.y)
    # a re-run with the same configuration solves nothing; a finished pair lost is redone alone
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("restored.png")}
    shutil.rmtree(out / "sigma=25" / "im0")
    again = run_suite(cfg, out, progress=False)
    changed = [p for p in out.rglob("restored.png") if stamps.get(p) != p.stat().st_mtime_ns]
    assert changed == [out / "sigma=25" / "im0" / "restored.png"]
    assert again["images"][3]["batch"] == 1 and again["images"][0] == result["images"][0]
    # another configuration in the same folder: nothing reused
    with open_dict(cfg):
        cfg.solver.iterations = 4
    assert fingerprint(cfg) != json.loads((out / "sigma=15" / "im0" / "metrics.json").read_text())["fingerprint"]
    third = run_suite(cfg, out, progress=False)
    assert all(e["iterations"] == 4 for e in third["images"])


def test_sr_suite_modcrop_y_channel_and_bicubic_baseline(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(smooth_image(25, 3)).save(folder / "odd.png")
    cfg = suite("sr", "sr", **{"benchmark.images": str(folder), "solver.iterations": 2})
    with open_dict(cfg):
        cfg.benchmark.grid = {"op.scale": [2, 3]}
    result = run_suite(cfg, tmp_path / "job", progress=False)
    assert [(e["problem"], e["border"], e["channel"]) for e in result["images"]] == [("scale=2", 2, "y"),
                                                                                     ("scale=3", 3, "y")]
    assert result["images"][0]["baseline"] == "bicubic" and result["problems"]["scale=3"]["label"] == "x3"
    assert Image.open(tmp_path / "job" / "scale=2" / "odd" / "ground_truth.png").size == (24, 24)
    assert Image.open(tmp_path / "job" / "scale=3" / "odd" / "ground_truth.png").size == (24, 24)


def test_empty_image_folder_is_one_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = suite("denoise", "denoise", **{"benchmark.images": str(empty)})
    with pytest.raises(PnPError, match="no images .* in folder"):
        run_suite(cfg, tmp_path / "job", progress=False)
    assert not (tmp_path / "job").exists()


def test_fingerprint_ignores_speed_settings():
    a = compose_config(op="blur", prior="tv", overrides={"threads": 1, "batch_size": 8, "progress": False,
                                                          "log_every": 5})
    b = compose_config(op="blur", prior="tv")
    c = compose_config(op="blur", prior="tv", overrides={"prior.weight": 2.0})
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)
    assert torch.get_num_threads() >= 1


def test_fingerprint_follows_the_weights_bytes_not_their_name(tmp_path):
    """Weights retrained and saved under the same path must not reuse results of the old ones."""
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"first")
    cfg = compose_config(op="blur", prior="red", overrides={"prior.denoiser.weights": str(weights)})
    before = fingerprint(cfg)
    weights.write_bytes(b"second")
    assert fingerprint(cfg) != before
    weights.write_bytes(b"first")
    assert fingerprint(cfg) == before
    assert fingerprint(compose_config(op="blur", prior="red")) != before  # the shipped colour model


def test_a_non_positive_batch_size_is_refused_not_an_empty_run(tmp_path, images):
    cfg = suite("denoise", "denoise", **{"benchmark.images": str(images), "batch_size": -3})
    with pytest.raises(PnPError, match="batch_size must be a positive integer, got -3"):
        run_suite(cfg, tmp_path / "job", progress=False)


def test_modcrop_keeps_the_corner_or_the_centre():
    """MATLAB's modcrop keeps the top-left corner; DIP's crop_image keeps the centre."""
    from pnp.benchmark import Task, prepare
    x = torch.arange(37 * 35.0).reshape(1, 1, 37, 35)
    corner = Task(id="a", label="a", op={}, noise={}, border=0, channel="rgb", modcrop=32)
    centre = Task(id="a", label="a", op={}, noise={}, border=0, channel="rgb", modcrop=32, modcrop_centre=True)
    assert torch.equal(prepare(x, corner), x[..., :32, :32])
    assert torch.equal(prepare(x, centre), x[..., 2:34, 1:33])


def test_experiment_table_averages_a_partial_key_over_its_problems(tmp_path):
    problems = {f"kernel=k{k},sigma={s}": {"label": f"k{k} σ={s}", "psnr": 30.0 + k - s, "psnr_observed": 20.0}
                for k in (1, 2) for s in (1, 2)}
    result = {"problems": problems, "images": [{"prior": "p", "solver": "s"}] * 4}
    experiment = {"name": "e", "source": "src", "paper": {"sigma=1": 31.0, "kernel=k2,sigma=2": 29.5}}
    table = Path(write_experiment_table(experiment, result, tmp_path)).read_text()
    assert "| sigma=1 (mean of 2) | 20.00 | 30.50 | 31.00 | -0.50 |" in table
    assert "| k2 σ=2 | 20.00 | 30.00 | 29.50 | +0.50 |" in table
    assert table.count("(mean of") == 1
