"""The SVD samplers (``solver=snips``, ``solver=ddrm``): a Gaussian posterior known in closed form,
the shipped denoiser against the operator's baseline, seeds, outputs, and bad input."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import REPO, run_cli, smooth_image
from pnp.__main__ import report_lines
from pnp.api import restore
from pnp.io import default_image, load_image
from pnp.problem import Problem
from pnp.priors.score import ScorePrior
from pnp.registry import OPERATORS
from pnp.solvers.ddrm import DDRM
from pnp.solvers.snips import SNIPS

from test_langevin import MU, S0, Quiet, gaussian_denoiser

pytestmark = pytest.mark.usefixtures("one_thread")


def gaussian_inpainting(sigma_y: float, size: int = 16) -> tuple[Problem, torch.Tensor]:
    """Half the pixels observed with noise sigma_y, x ~ N(MU, S0^2 I); returns the problem and the mask."""
    g = torch.Generator().manual_seed(0)
    op = OPERATORS.build("inpaint", shape=(1, size, size), generator=torch.Generator().manual_seed(3), missing=0.5)
    x = MU + S0 * torch.randn(1, 1, size, size, generator=g)
    y = op.A(x + sigma_y * torch.randn(x.shape, generator=g))
    observed = op.A(torch.ones_like(x))[0, 0] > 0.5
    return Problem(y=y, op=op, sigma=sigma_y, x_true=x, seed=1), observed


def posterior(problem: Problem, observed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel mean and variance: observed N(v (MU / S0^2 + y / sy^2), v), 1/v = 1/S0^2 + 1/sy^2; missing the prior."""
    v = 1 / (1 / S0**2 + 1 / problem.sigma**2)
    y = problem.y[0, 0]
    mean = torch.where(observed, v * (MU / S0**2 + y / problem.sigma**2), torch.full_like(y, MU))
    var = torch.where(observed, torch.full_like(y, v), torch.full_like(y, S0**2))
    return mean, var


def test_snips_matches_the_gaussian_posterior():
    """K = 200 chains x 128 pixels per group: mean z-scores N(0, 1), pooled variance within 4 relative
    standard errors (sqrt(2 / (128 (K - 1))) = 3.5%) plus 5% for the annealing's own bias (measured:
    -4% observed, +7% missing)."""
    problem, observed = gaussian_inpainting(0.1)
    k = 200
    solver = SNIPS(samples=k)
    solver.solve(problem, ScorePrior(denoiser=gaussian_denoiser), Quiet())
    s = solver.outputs["samples"][:, 0]
    mean, var = posterior(problem, observed)
    z = (s.mean(0) - mean) / (var / k).sqrt()
    assert z.abs().max() < 4.5 and abs(float(z.pow(2).mean()) - 1) < 4 * math.sqrt(2 / z.numel()) + 0.3
    tolerance = 4 * math.sqrt(2 / (int(observed.sum()) * (k - 1))) + 0.05
    for group, target in ((observed, var[observed][0]), (~observed, S0**2)):
        ratio = float(s.var(0)[group].mean()) / float(target)
        assert abs(ratio - 1) < tolerance, (ratio, tolerance)


def test_ddrm_mean_is_the_gaussian_posterior_mean():
    """DDRM's samples are narrower than the posterior (it ends on the denoised estimate), but their
    mean is the posterior mean: within a tenth of the prior's standard deviation per pixel."""
    problem, observed = gaussian_inpainting(0.1)
    solver = DDRM(samples=200)
    solver.solve(problem, ScorePrior(denoiser=gaussian_denoiser), Quiet())
    mean, _ = posterior(problem, observed)
    error = solver.outputs["samples"][:, 0].mean(0) - mean
    assert float(error.pow(2).mean().sqrt()) < 0.1 * S0


def test_noise_free_observed_pixels_stay_at_the_data():
    problem, observed = gaussian_inpainting(0.0)
    for solver in (SNIPS(samples=4), DDRM(samples=4)):
        solver.solve(problem, ScorePrior(denoiser=gaussian_denoiser), Quiet())
        s = solver.outputs["samples"][:, 0]
        assert float((s - problem.y[0, 0])[:, observed].abs().max()) < 0.05, type(solver).__name__


def image() -> torch.Tensor:
    """A 32 x 32 crop of the built-in image (textured: a smooth synthetic image is where samples,
    which carry texture, fall below bicubic interpolation; docs/samplers.md)."""
    return load_image(default_image())[..., 60:92, 60:92]


def synthetic() -> torch.Tensor:
    return torch.from_numpy(smooth_image(32, 3)).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("solver, op, params", [
    ("ddrm", "sr", {"op.scale": 2, "noise": "none"}),
    ("ddrm", "inpaint", {"noise.sigma": 7.65}),
    ("snips", "blur", {"op.boundary": "circular", "op.kernel_size": 5, "noise.sigma": 7.65}),
    ("snips", "inpaint", {"noise.sigma": 7.65}),
])
def test_shipped_denoiser_beats_the_baseline(solver, op, params):
    """The mean of 4 chains is closer to the truth than the observation (bicubic for SR)."""
    _, m = restore(image(), op=op, prior="score", solver=solver, seed=0, **{**params, "solver.samples": 4})
    assert m["psnr"] > m["psnr_observed"] + 0.5, (m["psnr"], m["psnr_observed"])


@pytest.mark.parametrize("solver", ["snips", "ddrm"])
def test_seed_fixes_the_samples_and_outputs(solver):
    params = {"noise.sigma": 7.65, "solver.samples": 3, "solver.sigma_min": 0.05}
    if solver == "snips":
        params.update({"solver.levels": 4, "solver.steps": 2})
    else:
        params["solver.steps"] = 5
    first, m = restore(synthetic(), op="inpaint", prior="score", solver=solver, seed=0, **params)
    again, _ = restore(synthetic(), op="inpaint", prior="score", solver=solver, seed=0, **params)
    other, _ = restore(synthetic(), op="inpaint", prior="score", solver=solver, seed=1, **params)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert m["uncertainty_scale"] > 0 and math.isfinite(m["psnr_single_sample_mean"])
    assert -1 <= m["uncertainty_error_correlation"] <= 1


def test_operator_without_an_svd_is_refused_in_one_line(tmp_path):
    result = run_cli("prior=score", "solver=snips", "op=cs", "progress=false", f"hydra.run.dir={tmp_path}/run",
                     cwd=REPO)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "needs an operator with an SVD" in message
    assert not (tmp_path / "run" / "restored.png").exists()


def test_report_flags_a_result_below_the_observation(tmp_path):
    worse = {"psnr": 20.0, "psnr_observed": 22.0, "solver": "snips", "iterations": 10, "seconds": 1.0}
    better = {**worse, "psnr": 24.0}
    assert "BELOW THE OBSERVATION" in report_lines(worse, tmp_path)[0]
    assert "BELOW" not in report_lines(better, tmp_path)[0]
