"""Training loop of pnp.train: bit-exact resume, eval/export, and clean errors on bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from PIL import Image

from pnp.errors import PnPError
from pnp.models import FFDNet, load_denoiser
from pnp.train import (CKPT_NAME, PatchStore, dead_units, eval_images, export, loss_weight, revive_dead_units,
                       sample_batch, sample_noise, to_channels, train)


def write_images(folder: Path, n=4, size=(40, 36), seed=0):
    """Smooth synthetic images, half colour, half gray."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        c = 3 if i % 2 == 0 else 1
        x = torch.nn.functional.interpolate(torch.rand(1, c, 6, 6, generator=g), size=size[::-1], mode="bilinear")
        a = (x[0].permute(1, 2, 0) * 255).round().to(torch.uint8).squeeze(-1).numpy()
        Image.fromarray(a).save(folder / f"im{i}.png")
    return folder


def config(tmp_path, **over):
    data = write_images(tmp_path / "data")
    val = write_images(tmp_path / "val", n=2, seed=1)
    with initialize_config_module("pnp.conf", version_base=None):
        cfg = compose("train", overrides=[
            f"data.dirs=[{data}]", f"val.dirs=[{val}]", "val.crop=24", "model.depth=3", "model.width=8",
            "patch=16", "batch=4", "steps=6", "warmup=2", "log_every=2", "val_every=3", "checkpoint_every=100",
            f"out_dir={tmp_path / 'run'}"])
    return OmegaConf.merge(cfg, over)


def test_resume_is_bit_exact(tmp_path):
    full = train(config(tmp_path, out_dir=str(tmp_path / "full"), revive_every=3))
    train(config(tmp_path, out_dir=str(tmp_path / "split"), stop_at=4, revive_every=3))
    ck = torch.load(tmp_path / "split" / CKPT_NAME, weights_only=True)
    assert ck["step"] == 4
    resumed = train(config(tmp_path, out_dir=str(tmp_path / "split"), revive_every=3))
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ca = torch.load(tmp_path / "full" / CKPT_NAME, weights_only=True)
    cb = torch.load(tmp_path / "split" / CKPT_NAME, weights_only=True)
    assert ca["step"] == cb["step"] == 6 and ca["best_psnr"] == cb["best_psnr"]
    sa, sb = ca["optimizer"]["state"], cb["optimizer"]["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in ("exp_avg", "exp_avg_sq"))
    log = (tmp_path / "split" / "train_log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss") and log[-1].startswith("6,")
    # no temp files left behind by the atomic writes
    assert sorted(p.name for p in (tmp_path / "split").iterdir()) == [CKPT_NAME, "train_log.csv"]


def test_export_and_arch_mismatch(tmp_path):
    cfg = config(tmp_path, steps=2, val_every=0)
    train(cfg)
    out = export(OmegaConf.merge(cfg, {"export": {"out": str(tmp_path / "w.pt")}}))
    net = load_denoiser(out)
    assert isinstance(net, FFDNet) and (net.depth, net.width) == (3, 8)
    with pytest.raises(PnPError, match="architecture"):
        train(OmegaConf.merge(cfg, {"model": {"width": 16}}))


def test_init_starts_a_new_run_from_trained_weights(tmp_path):
    cfg = config(tmp_path, steps=2, val_every=0)
    first = train(cfg)
    out = export(OmegaConf.merge(cfg, {"export": {"out": str(tmp_path / "w.pt")}}))
    again = train(config(tmp_path, stop_at=0, val_every=0, out_dir=str(tmp_path / "b"), init=str(out)))
    a, b = first.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(PnPError, match="do not fit"):
        train(config(tmp_path, val_every=0, out_dir=str(tmp_path / "c"), init=str(out), model={"width": 16}))


def test_revive_dead_units_keeps_the_function_and_wakes_them():
    torch.manual_seed(0)
    model = FFDNet(4, 8, 1)
    convs = [m for m in model.body if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[1].bias[:3] = -100.0  # channels 0-2 of the second hidden layer never fire
    x, sig = torch.rand(4, 1, 16, 16), torch.full((4,), 0.1)
    assert [int(d.sum()) for d in dead_units(model, x, sig)] == [0, 3, 0]
    before = model(x, sig)
    opt = torch.optim.Adam(model.parameters())
    model(x, sig).square().mean().backward()
    opt.step()
    before = model(x, sig)
    opt.state[convs[2].weight]["exp_avg"].fill_(1.0)
    assert revive_dead_units(model, x, sig, opt) == [0, 3, 0]
    torch.testing.assert_close(model(x, sig), before)
    assert torch.all(opt.state[convs[2].weight]["exp_avg"][:, :3] == 0)
    assert torch.all(opt.state[convs[2].weight]["exp_avg"][:, 3:] == 1)
    assert sum(int(d.sum()) for d in dead_units(model, x, sig)) == 0
    assert torch.all(convs[2].weight[:, :3] == 0) and torch.all(convs[1].bias[:3] == 0)


def test_batchnorm_training_exports_a_fused_network(tmp_path):
    cfg = config(tmp_path, steps=3, val_every=3, model={"norm": True})
    model = train(cfg).eval()
    out = export(OmegaConf.merge(cfg, {"export": {"out": str(tmp_path / "w.pt")}}))
    net = load_denoiser(out)
    assert not net.norm and not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    x = torch.rand(2, 3, 20, 18)
    with torch.no_grad():
        torch.testing.assert_close(net(x, 0.1), model.set_precision("fp32")(x, 0.1), atol=1e-5, rtol=1e-5)
    # the training checkpoint itself (with BatchNorm) loads too, fused
    ck_net = load_denoiser(tmp_path / "run" / CKPT_NAME)
    with torch.no_grad():
        torch.testing.assert_close(ck_net(x, 0.1), net(x, 0.1))


def test_loss_weight_formula():
    sig = torch.tensor([10.0, 30.0, 75.0, 150.0]) / 255
    plain = OmegaConf.create({"loss_sigma_ref": 75, "loss_balance": None})
    assert torch.allclose(loss_weight(sig, plain), torch.tensor([1.0, 1.0, 1.0, 0.25]))
    balanced = OmegaConf.create({"loss_sigma_ref": 75, "loss_balance": 15})  # x min(1, 15 / min(sigma, 75))
    assert torch.allclose(loss_weight(sig, balanced), torch.tensor([1.0, 0.5, 0.2, 0.05]))
    mse = OmegaConf.create({"loss_sigma_ref": None, "loss_balance": None})
    assert torch.equal(loss_weight(sig, mse), torch.ones(4))


def test_gray_patches_get_channel_identical_noise():
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (1, 30, 30), dtype=torch.uint8, generator=g),
              torch.randint(0, 256, (3, 30, 30), dtype=torch.uint8, generator=g)]
    clean, gray = sample_batch(images, g, 16, 8)
    assert gray.any() and (~gray).any()
    assert all(torch.equal(c[0], c[1]) == bool(k) for c, k in zip(clean, gray))
    n = sample_noise(g, clean.shape, gray)
    assert torch.equal(n[gray][:, 0], n[gray][:, 2])
    assert not torch.equal(n[~gray][:, 0], n[~gray][:, 2])


def test_gray_model_trains_on_luma_and_exports(tmp_path):
    """model.channels=1: colour images become BT.601 luma (as PIL's "L"); the exported gray
    model denoises colour input channel by channel."""
    rgb = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    pil = Image.fromarray(rgb.permute(1, 2, 0).numpy()).convert("L")
    assert (to_channels(rgb, 1)[0].int() - torch.from_numpy(__import__("numpy").array(pil)).int()).abs().max() <= 1
    cfg = config(tmp_path, model={"channels": 1})
    model = train(cfg)
    assert model.channels == 1
    cfg.export.out = str(tmp_path / "gray.pt")
    net = load_denoiser(export(cfg))
    x, s = torch.rand(2, 3, 20, 22), torch.tensor([0.1, 0.2])
    with torch.no_grad():
        assert torch.allclose(net(x, s)[1, 2], net(x[1:2, 2:3], 0.2)[0, 0], atol=1e-6)


def run_cli(tmp_path, *args):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "pnp.train", f"hydra.run.dir={tmp_path / 'hydra'}", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def assert_clean_error(r, pattern):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert pattern in lines[0], lines[0]


SMALL = ["model.depth=3", "model.width=8", "steps=1", "val_every=0", "batch=2"]


@pytest.mark.parametrize("case, pattern", [
    ("missing", "image folder not found"),
    ("empty", "no images"),
    ("small", "smaller than the patch size 64"),
    ("negative", "sigma_range=[-5.0, 10.0] is empty or negative"),
    ("reversed", "sigma_range=[30.0, 10.0] is empty or negative"),
    ("nan", "sigma_range=[nan, 10.0] must be finite numbers"),
    ("corrupt", "corrupt or unsafe checkpoint"),
    ("revive", "revive_every must be >= 0"),
    ("balance", "loss_balance=-1 must be a positive sigma"),
    ("init", "weights file not found"),
])
def test_bad_input_exit_code_2(tmp_path, case, pattern):
    data = write_images(tmp_path / "data")
    (tmp_path / "empty").mkdir()
    args = {"missing": [f"data.dirs=[{tmp_path / 'nope'}]"], "empty": [f"data.dirs=[{tmp_path / 'empty'}]"],
            "small": [f"data.dirs=[{data}]", "patch=64"],
            "negative": [f"data.dirs=[{data}]", "sigma_range=[-5,10]"],
            "reversed": [f"data.dirs=[{data}]", "sigma_range=[30,10]"],
            "nan": [f"data.dirs=[{data}]", "sigma_range=[nan,10]"],
            "corrupt": [f"data.dirs=[{data}]"],
            "revive": [f"data.dirs=[{data}]", "revive_every=-1"],
            "balance": [f"data.dirs=[{data}]", "loss_balance=-1"],
            "init": [f"data.dirs=[{data}]", f"init={tmp_path / 'nope.pt'}"]}[case]
    out = tmp_path / "run"
    if case == "corrupt":
        out.mkdir()
        (out / CKPT_NAME).write_bytes(os.urandom(2048))
    r = run_cli(tmp_path, *SMALL, f"out_dir={out}", *args, *([] if case == "small" else ["patch=16"]))
    assert_clean_error(r, pattern)


def test_eval_writes_json(tmp_path):
    data = write_images(tmp_path / "data", n=2)
    torch.manual_seed(0)
    torch.save(FFDNet(depth=3, width=8).state_dict(), tmp_path / "w.pt")
    r = run_cli(tmp_path, "mode=eval", f"eval.images={data}", f"eval.weights={tmp_path / 'w.pt'}",
                "eval.sigmas=[15,25]")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "hydra" / "eval.json").read_text())
    assert set(res) == {"15", "25"} and all(10 < v < 60 for v in res.values())
    assert "sigma 15:" in r.stdout
    r = run_cli(tmp_path, "mode=eval", f"eval.images={data}", f"eval.weights={tmp_path / 'nope.pt'}")
    assert_clean_error(r, "weights file not found")


@pytest.mark.parametrize("channels", [3, 1])
def test_gather_sampler_cuts_the_patches_sample_batch_cuts(channels):
    """PatchStore (the sampler of CUDA training) against plain slicing, rot90 and flip, with gray
    images replicated for the colour model."""
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 21, 17), dtype=torch.uint8, generator=g),
              torch.randint(0, 256, (1, 12, 30), dtype=torch.uint8, generator=g)]
    images = [to_channels(im, channels) for im in images]
    store = PatchStore(images, channels, 8)
    idx, top, left = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1]), torch.tensor([0, 4, 13, 2, 5, 0, 7, 1]), \
        torch.tensor([9, 22, 0, 11, 3, 7, 2, 20])
    t = torch.arange(8)
    got, gray = store.cut(idx, top, left, t)
    for b in range(8):
        img = images[int(idx[b])]
        x = img[:, top[b]:top[b] + 8, left[b]:left[b] + 8].expand(channels, -1, -1)
        x = torch.rot90(x, int(t[b]) % 4, (1, 2))
        x = x.flip(2) if t[b] >= 4 else x
        assert torch.equal(got[b], x.float() / 255)
        assert bool(gray[b]) == (img.shape[0] == 1)
    clean, gray = store.sample(torch.Generator().manual_seed(1), 64)
    assert clean.shape == (64, channels, 8, 8) and 0 <= clean.min() and clean.max() <= 1 and gray.any()


def test_time_limited_run_on_the_gather_sampler(tmp_path):
    """The CUDA training path on CPU: gather sampler, steps fitted to the time limit, stop at it."""
    cfg = config(tmp_path, sampler="gather", time_limit=2.0, time_calibrate=4, steps=10**6, warmup=2,
                 val_every=10**6, log_every=10**6)
    train(cfg)
    ck = torch.load(tmp_path / "run" / CKPT_NAME, weights_only=True)
    assert 4 <= ck["config"]["steps"] < 10**6 and ck["step"] <= ck["config"]["steps"]
    assert ck["best_psnr"] > 0  # validated at the end


def test_holdout_is_never_trained_on_and_overlap_is_refused(tmp_path):
    data = write_images(tmp_path / "data", n=6)
    cfg = config(tmp_path, steps=1, val_every=1)
    OmegaConf.set_struct(cfg, False)  # data.holdout gets a new folder name
    cfg = OmegaConf.merge(cfg, {"data": {"dirs": [str(data)], "holdout": {"data": ["im1.png", "im4.png"]}},
                                "val": {"holdout": True}})
    train(cfg)
    log = (tmp_path / "run" / "train_log.csv").read_text()
    assert "data-holdout=" in log and "val=" in log
    cfg.eval.images = "holdout:data"
    assert [n for n, _ in eval_images(cfg)] == ["im1.png", "im4.png"]
    with pytest.raises(PnPError, match="overlaps the training images"):
        train(OmegaConf.merge(cfg, {"val": {"dirs": [str(data)]}, "out_dir": str(tmp_path / "b")}))
    with pytest.raises(PnPError, match="im9.png"):
        train(OmegaConf.merge(cfg, {"data": {"holdout": {"data": ["im9.png"]}}, "out_dir": str(tmp_path / "c")}))


def test_overlapping_validation_split_exits_with_one_line(tmp_path):
    data = write_images(tmp_path / "data")
    r = run_cli(tmp_path, "model.depth=3", "model.width=8", "steps=1", "batch=2", "patch=16", "val_every=1",
                f"data.dirs=[{data}]", f"val.dirs=[{data}]", f"out_dir={tmp_path / 'run'}")
    assert_clean_error(r, "the validation split overlaps the training images")
