"""Bad inputs, faults and concurrent writers: one line on stderr naming the real culprit (key or
file), a non-zero exit, no traceback, and nothing half-written or left behind.

Most command-line cases run ``pnp.__main__.main`` in this process (the same code path as
``python -m pnp``, 20x faster); Ctrl-C and concurrent sweeps run real processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import smooth_image

TINY = ["prior=tv", "solver.iterations=2", "progress=false"]


def cli(args, cwd: Path, capfd, monkeypatch, module: str = "pnp") -> tuple[int, str, str]:
    """Run the command line in-process in ``cwd``: (exit code, stderr, stdout)."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [module, *args])
    capfd.readouterr()
    code = 0
    try:
        if module == "pnp":
            from pnp.__main__ import main
        else:
            from pnp.train import main
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    out, err = capfd.readouterr()
    return code, err, out


def one_line(err: str, start: str = "error: ") -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(start), err
    assert "Traceback" not in err
    return lines[0]


def png(path: Path, size: int = 16, channels: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(smooth_image(size, channels)).save(path)
    return path


@pytest.fixture
def tiny(tmp_path) -> Path:
    return png(tmp_path / "tiny.png")


def leftovers(tmp_path: Path) -> list[str]:
    """What a run left in the working folder (beyond the test's own inputs)."""
    return sorted(p.name for p in tmp_path.iterdir() if p.name in ("outputs", "multirun", "checkpoints", "run"))


# ----------------------------------------------------------------------------- 1, 5, 8: API tensors

def _tensor(kind: str) -> torch.Tensor:
    x = torch.from_numpy(smooth_image(16, 3)).permute(2, 0, 1)[None].float() / 255
    return {
        "uint8": (x * 255).to(torch.uint8),
        "0-255 float": x * 255,
        "negative": x - 0.5,
        "nan": x.masked_fill(x > 0.9, float("nan")),
        "HxWxC": x[0].permute(1, 2, 0),
        "empty": x[..., :0, :0],
    }[kind]


TENSORS = [("uint8", "x.float() / 255"), ("0-255 float", "x / 255"), ("negative", "x.clamp(0, 1)"),
           ("nan", "NaN"), ("HxWxC", "permute(2, 0, 1)"), ("empty", "empty")]


@pytest.mark.parametrize("kind,message", TENSORS, ids=[k for k, _ in TENSORS])
def test_api_refuses_bad_tensors_before_solving(kind, message):
    from pnp import restore
    from pnp.errors import PnPError

    with pytest.raises(PnPError) as err:
        restore(_tensor(kind), op="denoise", prior="tv", **{"solver.iterations": 2})
    text = str(err.value)
    assert "\n" not in text and message in text and text.startswith("image tensor"), text


def test_api_observed_noisy_tensor_is_accepted():
    from pnp import restore

    y = _tensor("negative") + 0.45  # an observation slightly outside [0, 1] (noise): fine
    x, metrics = restore(y, op="denoise", prior="tv", observed=True, **{"solver.iterations": 2})
    assert x.shape == y.shape and "psnr" not in metrics


# ----------------------------------------------------------------------------- 2, 5, 6: config values

VALUES = [
    (["noise=poisson", "noise.gain=inf"], "noise.gain"),
    (["noise=poisson", "noise.gain=nan"], "noise.gain"),
    (["noise=poisson", "noise.gain=abc"], "noise.gain"),
    (["noise=poisson", "noise.gain=1e30"], "noise.gain"),
    (["noise.sigma=nan"], "noise.sigma"),
    (["noise.sigma=abc"], "noise.sigma"),
    (["noise.sigma=25/255"], "write 25 for 25/255"),
    (["noise.sigma=inf"], "noise.sigma"),
    (["solver.iterations=abc"], "solver.iterations must be a positive integer"),
    (["solver.iterations=2.5"], "solver.iterations must be a positive integer"),
    (["seed=abc"], "seed must be an integer >= 0"),
    (["op=sr", "op.scale=abc"], "op.scale must be a positive integer"),
    (["prior.weight=abc"], "prior.weight must be auto or a finite number"),
]


@pytest.mark.parametrize("args,message", VALUES, ids=[" ".join(a) for a, _ in VALUES])
def test_bad_config_value_names_the_key(tmp_path, tiny, capfd, monkeypatch, args, message):
    code, err, _ = cli([f"image={tiny}", "op=denoise", *TINY, *args], tmp_path, capfd, monkeypatch)
    line = one_line(err)
    assert code == 2 and message in line and "solver.step" not in line, line
    assert leftovers(tmp_path) == []  # not even an empty outputs/<date>/


# ----------------------------------------------------------------------------- 3: concurrent sweeps

SWEEP = ["-m", "prior=tv", "op=denoise", "noise.sigma=5,10,15", "solver.iterations=2", "progress=false", "sweep=s"]


def _jobs(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/status.json"))}


def test_two_sweeps_at_once_run_each_job_once(tmp_path, tiny):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "pnp", *SWEEP, f"image={tiny}"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    jobs = _jobs(tmp_path / "multirun" / "s")
    assert sorted(jobs) == ["0", "1", "2"]
    assert all(j["status"] == "done" and j["runs"] == 1 for j in jobs.values()), jobs  # each job ran once
    assert not (tmp_path / "multirun" / "s" / ".replaced").exists()  # nothing moved aside or overwritten
    assert not list((tmp_path / "multirun" / "s").rglob(".lock"))
    refused = [err for code, err in results if code != 0]
    for err in refused:  # the later one, when they overlapped: one line naming the running process
        assert "in use by pid" in one_line(err) and "multirun/s" in err
    assert len(refused) <= 1 and "Traceback" not in "".join(err for _, err in results)


def test_sweep_refused_while_another_holds_it_and_stale_lock_recovered(tmp_path, tiny, capfd, monkeypatch):
    from pnp.io import folder_lock

    sweep_dir = tmp_path / "multirun" / "s"
    with folder_lock(sweep_dir, "sweep folder"):  # a live writer (this process)
        code, err, _ = cli([*SWEEP, f"image={tiny}"], tmp_path, capfd, monkeypatch)
    assert code == 2 and f"in use by pid {os.getpid()}" in one_line(err)
    assert sorted(p.name for p in sweep_dir.iterdir()) == []  # the refused sweep wrote nothing
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (sweep_dir / ".lock").write_text(json.dumps({"pid": dead.pid, "host": "here", "since": "then"}))
    code, err, _ = cli([*SWEEP, f"image={tiny}"], tmp_path, capfd, monkeypatch)  # left by a killed sweep
    assert code == 0, err
    assert all(j["status"] == "done" for j in _jobs(sweep_dir).values()) and len(_jobs(sweep_dir)) == 3
    assert not (sweep_dir / ".lock").exists()


def test_job_in_use_is_not_run_twice(tmp_path, tiny, capfd, monkeypatch):
    from pnp.io import folder_lock

    with folder_lock(tmp_path / "multirun" / "s" / "1", "sweep job folder"):
        code, err, _ = cli([*SWEEP, f"image={tiny}"], tmp_path, capfd, monkeypatch)
    jobs = _jobs(tmp_path / "multirun" / "s")
    assert sorted(jobs) == ["0", "2"] and "job 1: not run here" in err and f"pid {os.getpid()}" in err


# ----------------------------------------------------------------------------- 4: metrics windows

def test_border_leaving_nothing_is_refused_before_solving(tmp_path, capfd, monkeypatch):
    small = png(tmp_path / "small.png", size=6)  # sr x4: a 4 px border; a 6x6 kernel: 3 px
    for args in (["op=sr", "op.scale=4"], ["op=blur", "op.kernel=box", "op.kernel_size=6"]):
        code, err, _ = cli([f"image={small}", *TINY, *args, f"hydra.run.dir={tmp_path / 'run'}"],
                           tmp_path, capfd, monkeypatch)
        line = one_line(err)
        assert code == 2 and "metrics.border" in line and "small.png" in line, line
        assert leftovers(tmp_path) == []


def test_image_under_ssim_window_gets_psnr_and_names_skipped_ssim(tmp_path, capfd, monkeypatch):
    small = png(tmp_path / "small.png", size=5)
    out = tmp_path / "run"
    code, err, _ = cli([f"image={small}", "op=denoise", *TINY, f"hydra.run.dir={out}"], tmp_path, capfd, monkeypatch)
    line = one_line(err, "warning: ")
    assert code == 0 and "ssim" in line and "small.png" in line
    m = json.loads((out / "metrics.json").read_text())
    assert "psnr" in m and "ssim" not in m and m["skipped_metrics"] == ["ssim", "ssim_observed"]


# ----------------------------------------------------------------------------- 7: folders with unreadable files

def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    png(folder / "a.png")
    png(folder / "b.png")
    (folder / "c.png").write_bytes(b"not an image")
    data = (folder / "a.png").read_bytes()
    (folder / "d.png").write_bytes(data[: len(data) // 2])  # truncated
    return folder


def test_folder_with_unreadable_images_listed_up_front(tmp_path, capfd, monkeypatch):
    folder = _folder(tmp_path)
    code, err, _ = cli([f"image={folder}", "op=denoise", *TINY, f"hydra.run.dir={tmp_path / 'run'}"],
                       tmp_path, capfd, monkeypatch)
    line = one_line(err)
    assert code == 2 and "c.png" in line and "d.png" in line and "skip_unreadable=true" in line
    assert "a.png" not in line and leftovers(tmp_path) == []  # nothing solved, nothing written


def test_skip_unreadable_records_what_was_skipped(tmp_path, capfd, monkeypatch):
    folder, out = _folder(tmp_path), tmp_path / "run"
    code, err, _ = cli([f"image={folder}", "op=denoise", *TINY, "skip_unreadable=true", f"hydra.run.dir={out}"],
                       tmp_path, capfd, monkeypatch)
    line = one_line(err, "warning: ")
    assert code == 0 and "c.png" in line and "d.png" in line
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["images"]) == 2 and sorted(Path(p).name for p in m["skipped_images"]) == ["c.png", "d.png"]


# ----------------------------------------------------------------------------- 9: misspelled keys

KEYS = [(["prior=red", "prior.sigmaa=3"], "did you mean prior.sigma?"), (["imgae=x.png"], "did you mean image?"),
        (["solver.iteration=3"], "did you mean solver.iterations?")]


@pytest.mark.parametrize("args,message", KEYS, ids=[a[-1] for a, _ in KEYS])
def test_misspelled_key_suggests_the_closest(tmp_path, capfd, monkeypatch, args, message):
    code, err, _ = cli([*TINY, *args], tmp_path, capfd, monkeypatch)
    line = one_line(err)
    assert code == 2 and message in line and "+" not in line, line
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- 10: Ctrl-C

def test_ctrl_c_exits_130_with_one_line_and_no_run_folder(tmp_path):
    out = tmp_path / "run"
    args = ["prior=tv", "op=denoise", "solver.iterations=100000", "progress=false", f"hydra.run.dir={out}"]
    proc = subprocess.Popen([sys.executable, "-m", "pnp", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (out / ".hydra").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(1.0)  # into the solve
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    err = proc.stderr.read()
    # 130; or, where CPython saw the interrupt escape code run by a C extension (torch), it ends
    # by SIGINT itself, which a shell reports as 130 too
    assert code in (130, -signal.SIGINT) and "interrupted" in one_line(err, "interrupted"), err
    assert not out.exists()


# ----------------------------------------------------------------------------- 11: debris

def test_failed_run_in_default_folder_leaves_no_outputs_folder(tmp_path, capfd, monkeypatch):
    code, err, _ = cli(["image=missing.png", *TINY], tmp_path, capfd, monkeypatch)
    assert code == 2 and "missing.png" in one_line(err)
    assert leftovers(tmp_path) == []


def test_failed_training_leaves_no_checkpoints_or_empty_log(tmp_path, capfd, monkeypatch):
    code, err, _ = cli([f"data.dirs=[{tmp_path / 'nowhere'}]", "threads=1"], tmp_path, capfd, monkeypatch,
                       module="pnp.train")
    assert code == 2 and "nowhere" in one_line(err)
    assert leftovers(tmp_path) == [] and not list(tmp_path.rglob("train.log"))


# ----------------------------------------------------------------------------- 12: reusing a run folder

def test_reusing_run_dir_needs_overwrite(tmp_path, tiny, capfd, monkeypatch):
    out = tmp_path / "run"
    base = [f"image={tiny}", "op=denoise", *TINY, f"hydra.run.dir={out}"]
    assert cli(base, tmp_path, capfd, monkeypatch)[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".hydra" not in p.parts}
    code, err, _ = cli([*base, "seed=1"], tmp_path, capfd, monkeypatch)
    line = one_line(err)
    assert code == 2 and "overwrite=true" in line and str(out) in line
    assert {p: p.read_bytes() for p in before} == before  # the earlier results untouched
    assert (out / ".hydra" / "overrides.yaml").read_text().count("seed=1") == 0
    code, err, _ = cli([*base, "seed=1", "overwrite=true"], tmp_path, capfd, monkeypatch)
    assert code == 0 and json.loads((out / "metrics.json").read_text())["seed"] == 1


# ----------------------------------------------------------------------------- 13: signed kernels

def test_kernel_with_negative_entries_warns_once(tmp_path, tiny, capfd, monkeypatch):
    k = np.ones((5, 5))
    k[0, 0] = -0.5
    np.save(tmp_path / "signed.npy", k)
    out = tmp_path / "run"
    code, err, _ = cli([f"image={tiny}", "op=blur", f"op.kernel={tmp_path / 'signed.npy'}", *TINY,
                        f"hydra.run.dir={out}"], tmp_path, capfd, monkeypatch)
    line = one_line(err, "warning: ")
    assert code == 0 and "signed.npy" in line and "negative" in line
    assert (out / "metrics.json").is_file()
