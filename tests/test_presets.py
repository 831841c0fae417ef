"""Per-operator presets: rules, their lookup, and the values a run records."""
from __future__ import annotations

import pytest
import torch

from pnp.api import compose_config, restore
from pnp.errors import PnPError
from pnp.presets import check_rule, evaluate, select
from pnp.problem import make_problem
from pnp.registry import PRIORS
from pnp.records import plain as _plain
from pnp.runner import build_triple


class Smoothing(torch.nn.Module):
    """A cheap stand-in for D: a 3x3 box blur (the tests check parameters, not quality)."""

    def forward(self, x, sigma):
        return torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


def problem(op: dict, sigma: float, size: int = 30):
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    return make_problem(x, op, {"name": "gaussian", "sigma": sigma}, seed=0)


BLUR = {"name": "blur", "kernel": "gaussian", "kernel_size": 5, "kernel_sigma": 1.0, "boundary": "valid"}


def test_rules_interpolate_linearly_and_hold_beyond_their_ends():
    rule = {"noise": [2.55, 12.75], "value": [10.0, 20.0]}
    assert evaluate(rule, 0.0) == 10.0
    assert evaluate(rule, 7.65) == pytest.approx(15.0)
    assert evaluate(rule, 50.0) == 20.0
    assert evaluate(3.5, 7.0, 4) == 3.5
    table = {"noise": [0.0, 10.0], "scale": [2, 4], "value": [[30.0, 50.0], [10.0, 20.0]]}
    assert evaluate(table, 0.0, 3) == pytest.approx(40.0)
    assert evaluate(table, 5.0, 4) == pytest.approx(35.0)


@pytest.mark.parametrize("rule", [{"noise": [3, 1], "value": [1, 2]}, {"noise": [1, 2], "value": [1]},
                                  {"speed": [1], "value": [1]}, {"noise": [1, 2], "scale": [2], "value": [1, 2]},
                                  True, None, [1, 2]])
def test_malformed_rules_are_refused_in_one_line(rule):
    with pytest.raises(PnPError) as err:
        check_rule("prior.presets.blur.sigma", rule)
    assert "\n" not in str(err.value) and "prior.presets.blur.sigma" in str(err.value)


def test_a_preset_naming_an_unknown_key_is_refused():
    with pytest.raises(PnPError, match="unknown key.*sigmaa.*known: gamma, sigma"):
        select({"blur": {"sigmaa": 3}}, "blur", "daep", {"sigma", "gamma"})
    assert select({"default": {"sigma": 3}}, "sr", "daep", {"sigma"}) == {"sigma": 3}


@pytest.mark.parametrize("name,key,scale_of", [("daep", "sigma", 255), ("daep", "gamma", 1), ("red", "weight", 1),
                                               ("red", "sigma", 255), ("dmsp", "sigma", 255),
                                               ("dmsp", "noise_floor", 1)])
def test_auto_keys_follow_the_shipped_presets(name, key, scale_of):
    """What the prior resolves for ``auto`` is the shipped preset's rule at the problem's noise
    level and scale; a number given in the config is kept."""
    for op, sigma in ((BLUR, 2.55), (BLUR, 12.75), ({"name": "sr", "scale": 3}, 0.0), ({"name": "sr", "scale": 2}, 7.65)):
        cfg = compose_config(op["name"], name)
        preset = select(_plain(cfg.prior)["presets"], op["name"], name, set(PRIORS.get(name).auto_keys))
        prior = PRIORS.build(name, preset=preset).set_network(Smoothing())
        p = problem(op, sigma)
        prior.setup(p)
        value = getattr(prior, key) * scale_of
        expected = evaluate(preset[key], sigma, op.get("scale", 1)) if key in preset else PRIORS.get(name).auto_keys[key]
        assert value == pytest.approx(expected), (op, sigma)
        assert prior.params()[key] == pytest.approx(expected)
    fixed = PRIORS.build(name, **{key: 7.0}).set_network(Smoothing())
    fixed.setup(problem(BLUR, 12.75))
    assert getattr(fixed, key) * scale_of == pytest.approx(7.0)


@pytest.mark.parametrize("op,sigma,weight", [(BLUR, 2.55, 12.0), (BLUR, 5.1, 10.0), (BLUR, 12.75, 4.0), (BLUR, 10.2, 6.0),
                                              ({"name": "sr", "scale": 2}, 7.65, 4.0)])
def test_tv_weight_auto_follows_its_preset(op, sigma, weight):
    """TV's deblurring weight is tabled over the noise level; other operators keep 4."""
    cfg = compose_config(op["name"], "tv")
    assert cfg.prior.weight == "auto"
    preset = select(_plain(cfg.prior)["presets"], op["name"], "tv", set(PRIORS.get("tv").auto_keys))
    prior = PRIORS.build("tv", preset=preset)
    prior.setup(problem(op, sigma))
    assert prior.weight == pytest.approx(weight) and prior.params()["weight"] == pytest.approx(weight)
    fixed = PRIORS.build("tv", weight=2.5, preset=preset)
    fixed.setup(problem(op, sigma))
    assert fixed.params()["weight"] == 2.5


def test_daep_without_a_preset_uses_the_authors_values():
    prior = PRIORS.build("daep").set_network(Smoothing())
    prior.setup(problem(BLUR, 7.65))
    assert (prior.params()["sigma"], prior.gamma) == (pytest.approx(25.0), 27.5)


def test_cfg_job_shows_the_presets():
    cfg = compose_config("sr", "daep")
    assert "sr" in cfg.prior.presets and "sigma" in cfg.prior.presets.sr


def test_the_run_record_has_every_value_used():
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    _, m = restore(x, op="blur", prior="red", **{"solver.iterations": 2, "op.kernel_size": 5})
    prior, solver = m["params"]["prior"], m["params"]["solver"]
    assert {"weight", "sigma", "denoiser"} <= set(prior)
    assert prior["denoiser"]["precision"] in ("fp32", "bf16") and len(prior["denoiser"]["sha256"][0]) == 64
    assert solver["iterations"] == 2 and solver["step"] == 1.0
    assert m["restarts"] == 0 and m["diverged"] is False
    assert "psnr_border" in m


def test_build_triple_passes_the_operator_preset():
    cfg = compose_config("sr", "red")
    prior, _ = build_triple(cfg)
    assert prior.preset == dict(_plain(cfg.prior)["presets"]["sr"])


def test_daep_sr_on_a_side_not_a_multiple_of_the_scale_beats_bicubic():
    """The failing shape: noise-free bicubic x3 on 36 x 37 (37 = 3 x 12 + 1). There the authors'
    data gradient (bicubic upsampling of the residual) is not the adjoint (measured here: 25.5
    dB, and divergence on larger images); the default, the adjoint, is far above bicubic."""
    from pnp.io import default_image, load_image

    torch.set_num_threads(1)
    x = load_image(default_image())[..., 90:126, 100:137]
    common = {"op.scale": 3, "prior.denoiser.precision": "fp32"}
    _, ours = restore(x, op="sr", prior="daep", noise="none", **common)
    assert ours["restarts"] == 0 and ours["params"]["prior"]["sr_data_grad"] == "adjoint"
    assert ours["psnr"] > ours["psnr_observed"] + 3.0
    _, authors = restore(x, op="sr", prior="daep", noise="none", **common, **{"prior.sr_data_grad": "bicubic"})
    assert ours["psnr"] > authors["psnr"] + 2.0


def test_a_diverged_run_is_not_reported_as_a_success(tmp_path, color_png):
    """Through the CLI: a step 1e6 x too large ends with one warning naming the step, the report
    line and metrics.json say it diverged, and the result is the best iterate (the start)."""
    import json

    from conftest import run_cli

    r = run_cli("prior=tv", "solver=gd", "solver.step=1e6", "solver.iterations=10", "op.kernel_size=5",
                f"image={color_png}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: diverged")]
    assert len(warnings) == 1 and "solver.step" in warnings[0] and "Traceback" not in r.stderr
    assert "DIVERGED" in r.stdout
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["diverged"] is True and m["restarts"] == 3 and m["psnr"] >= m["psnr_observed"] - 1e-6
