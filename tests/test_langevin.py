"""The score prior and the Langevin samplers (``langevin``: Kadkhodaie & Simoncelli;
``annealed_langevin``: Song & Ermon): a Gaussian posterior known in closed form, seeds, outputs,
every operator, bad input."""
import math

import numpy as np
import pytest
import torch

from conftest import REPO, run_cli
from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.operator import Operator
from pnp.problem import Problem, make_problem
from pnp.priors.score import ScorePrior
from pnp.registry import check_compatible
from pnp.runner import save_outputs
from pnp.solvers.annealed_langevin import SCHEDULE_DEFAULT, AnnealedLangevin
from pnp.solvers.langevin import Langevin

MU, S0 = 0.5, 0.2  # the Gaussian prior x ~ N(MU, S0^2 I)


pytestmark = pytest.mark.usefixtures("one_thread")


def gaussian_denoiser(x, sigma):
    """The MMSE denoiser of N(MU, S0^2 I): D(x, sigma) = MU + S0^2 / (S0^2 + sigma^2) (x - MU)."""
    s2 = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1) ** 2
    return MU + S0**2 / (S0**2 + s2) * (x - MU)


class Mask(Operator):
    """y = m . x, every other pixel observed."""

    def __init__(self, shape, generator=None):
        super().__init__(shape)
        observed = torch.arange(shape[1] * shape[2]) % 2 == 0
        self.register_buffer("mask", observed.float().view(1, 1, shape[1], shape[2]))

    def A(self, x):
        return self.mask * x

    def A_adjoint(self, y):
        return self.mask * y

    def data_step(self, y, z, rho, sigma):
        return (self.mask * y / sigma**2 + rho * z) / (self.mask / sigma**2 + rho)


class BlockMean(Operator):
    """y = the mean of each 2 x 2 block (x2 decimation): A A^T = I / 4."""

    def A(self, x):
        return torch.nn.functional.avg_pool2d(x, 2)

    def A_adjoint(self, y):
        return torch.nn.functional.interpolate(y, scale_factor=2, mode="nearest") / 4


class Quiet:
    """A monitor that records nothing."""
    should_stop, step_param = False, ""

    def due(self, step, device):
        return True

    def skip(self, step):
        pass

    def __call__(self, step, x, objective=None):
        assert torch.isfinite(x).all()


def gaussian_problem(sigma_y: float, size: int = 16, seed: int = 1) -> Problem:
    g = torch.Generator().manual_seed(0)
    op = Mask((1, size, size))
    x = MU + S0 * torch.randn(1, 1, size, size, generator=g)
    y = op.A(x + sigma_y * torch.randn(x.shape, generator=g))
    return Problem(y=y, op=op, sigma=sigma_y, x_true=x, seed=seed)


def sampler(variant: str = "annealed", **params):
    """The annealed sampler (levels, steps, eps, likelihood) or the Kadkhodaie-Simoncelli one."""
    if variant == "annealed":
        return AnnealedLangevin(**params)
    return Langevin(**{k: v for k, v in params.items() if k not in ("levels", "steps", "eps")})


def sample(problem, variant: str = "annealed", **params):
    solver = sampler(variant, **params)
    solver.solve(problem, ScorePrior(denoiser=gaussian_denoiser), Quiet())
    return solver


def test_annealed_langevin_matches_the_gaussian_posterior():
    """Observed pixels: N(v (MU / S0^2 + y / sy^2), v), 1/v = 1/S0^2 + 1/sy^2; missing: the prior.

    K = 200 chains x 128 pixels per group: the mean's z-scores are N(0, 1) and the pooled variance
    has a relative standard error sqrt(2 / (128 (K - 1))) = 0.9%; the test allows 4 of them. The
    schedule is chosen so that the sampler's own bias (ULA step, the final level sigma_L = 0.01
    added to both variances) stays near 1.5% (measured: +1.7% observed, +0.9% missing).
    """
    sigma_y, k = 0.1, 200
    problem = gaussian_problem(sigma_y)
    solver = sample(problem, variant="annealed", samples=k, levels=3, steps=2000, eps=5e-5)
    s = solver.outputs["samples"][:, 0]  # K x H x W
    observed = problem.op.mask[0, 0].bool()
    v_obs = 1 / (1 / S0**2 + 1 / sigma_y**2)
    mean = torch.where(observed, v_obs * (MU / S0**2 + problem.y[0, 0] / sigma_y**2), torch.full_like(s[0], MU))
    var = torch.where(observed, torch.full_like(s[0], v_obs), torch.full_like(s[0], S0**2))
    z = (s.mean(0) - mean) / (var / k).sqrt()
    assert z.abs().max() < 4.5  # 256 pixels: P(max |z| > 4.5) ~ 2e-3
    assert abs(float(z.pow(2).mean()) - 1) < 4 * math.sqrt(2 / z.numel())
    tolerance = 4 * math.sqrt(2 / (observed.sum().item() * (k - 1)))
    for group, target in ((observed, v_obs), (~observed, S0**2)):
        ratio = float(s.var(0)[group].mean()) / target
        assert abs(ratio - 1) < tolerance, (ratio, tolerance)


def test_annealed_langevin_scaled_likelihood_on_a_decimation():
    """y = block means + noise: the posterior of a block's mean m is N(v (MU / (S0^2 / 4) + y / sy^2), v),
    1/v = 4 / S0^2 + 1/sy^2. The scaled likelihood (c = ||A A^T|| = 1/4) reaches it within the
    sampling error (K = 200 chains x 64 blocks: 4 relative standard errors of the variance), and
    differs from the plain one, whose levels let y in 4 times too weakly."""
    sigma_y, k, size = 0.05, 200, 16
    g = torch.Generator().manual_seed(0)
    op = BlockMean((1, size, size))
    x = MU + S0 * torch.randn(1, 1, size, size, generator=g)
    y = op.A(x) + sigma_y * torch.randn(1, 1, size // 2, size // 2, generator=g)
    problem = Problem(y=y, op=op, sigma=sigma_y, x_true=x, seed=1)
    solver = sample(problem, variant="annealed", samples=k, levels=3, steps=2000, eps=5e-5)
    means = torch.nn.functional.avg_pool2d(solver.outputs["samples"], 2)[:, 0]  # K x 8 x 8 block means
    v = 1 / (4 / S0**2 + 1 / sigma_y**2)
    target = v * (4 * MU / S0**2 + y[0, 0] / sigma_y**2)
    z = (means.mean(0) - target) / math.sqrt(v / k)
    assert z.abs().max() < 4.5 and abs(float(z.pow(2).mean()) - 1) < 4 * math.sqrt(2 / z.numel())
    ratio = float(means.var(0).mean()) / v
    assert abs(ratio - 1) < 4 * math.sqrt(2 / (z.numel() * (k - 1))) + 0.02, ratio
    plain = sample(problem, variant="annealed", samples=4, levels=3, steps=200, eps=5e-5, likelihood="plain")
    scaled = sample(problem, variant="annealed", samples=4, levels=3, steps=200, eps=5e-5)
    assert not torch.equal(plain.outputs["samples"], scaled.outputs["samples"])


def test_kadkhodaie_keeps_the_data_and_samples_the_missing_pixels():
    """Noise-free inpainting: observed pixels end at y (to the final noise sigma_L), missing ones
    average to the prior mean within their standard error."""
    problem = gaussian_problem(0.0)
    solver = sample(problem, variant="kadkhodaie", samples=100)
    s = solver.outputs["samples"][:, 0]
    observed = problem.op.mask[0, 0].bool()
    assert float((s - problem.y[0, 0])[:, observed].abs().mean()) < 0.01
    missing_mean = float(s[:, ~observed].mean())
    assert abs(missing_mean - MU) < 4 * S0 / math.sqrt(s[:, ~observed].numel())


@pytest.mark.parametrize("variant", ["annealed", "kadkhodaie"])
def test_fixed_seed_gives_identical_samples(variant):
    params = dict(variant=variant, samples=3, levels=2, steps=5, iterations=None if variant == "annealed" else 20)
    a = sample(gaussian_problem(0.05, seed=3), **params).outputs["samples"]
    b = sample(gaussian_problem(0.05, seed=3), **params).outputs["samples"]
    c = sample(gaussian_problem(0.05, seed=4), **params).outputs["samples"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_outputs_mean_uncertainty_and_files(tmp_path):
    problem = gaussian_problem(0.1)
    solver = AnnealedLangevin(samples=16, levels=3, steps=100, eps=5e-5)
    mean = solver.solve(problem, ScorePrior(denoiser=gaussian_denoiser), Quiet())
    out = solver.outputs
    assert out["samples"].shape == (16, 1, 16, 16) and mean.shape == (1, 1, 16, 16)
    assert torch.allclose(mean, out["samples"].mean(0, keepdim=True))
    assert out["uncertainty"].shape == (16, 16, 3) and out["uncertainty"].dtype == np.uint8
    assert out["uncertainty_scale"] > 0 and math.isfinite(out["psnr_single_sample_mean"])
    # missing pixels are both more uncertain and worse: the std map predicts the error. With the
    # exact posterior std the correlation would be 0.43 (errors are half-normal within each group);
    # 16 samples measured 0.39.
    assert out["uncertainty_error_correlation"] > 0.25
    scalars = save_outputs(tmp_path, mean.clamp(0, 1), problem, out, [])
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [f"{i:03d}.png" for i in range(16)]
    assert (tmp_path / "uncertainty.png").is_file() and (tmp_path / "restored.png").is_file()
    assert set(scalars) == {"uncertainty_scale", "psnr_single_sample_mean", "uncertainty_error_correlation"}


@pytest.mark.parametrize("name", ["denoise", "inpaint", "sr", "blur", "cs", "demosaic"])
@pytest.mark.parametrize("variant", ["annealed", "kadkhodaie"])
def test_score_prior_works_with_every_operator(name, variant):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    problem = make_problem(x, {"name": name}, {"name": "gaussian", "sigma": 5.0}, seed=0)
    solver = sampler(variant, samples=2, levels=2, steps=3, iterations=None if variant == "annealed" else 5)
    mean = solver.solve(problem, ScorePrior(denoiser=gaussian_denoiser), Quiet())
    assert mean.shape == x.shape and torch.isfinite(mean).all()
    assert solver.outputs["samples"].shape == (2, 3, 32, 32)


def test_schedule_per_operator_and_overrides():
    """The per-operator step comes from conf/prior/score.yaml (solvers.by_op) through build_triple."""
    from pnp.api import compose_config
    from pnp.runner import build_triple

    _, solver = build_triple(compose_config("inpaint", "score", "annealed_langevin"))
    assert solver.schedule() == {**SCHEDULE_DEFAULT, "eps": 5e-6}
    assert AnnealedLangevin().schedule() == SCHEDULE_DEFAULT
    assert AnnealedLangevin(eps=1e-5, steps=30).schedule() == {"eps": 1e-5, "levels": 10, "steps": 30}
    assert AnnealedLangevin(eps=3e-5, levels=4, iterations=10).schedule() == {"eps": 3e-5, "levels": 4, "steps": 3}


def test_score_prior_from_weights_file(tmp_path):
    from pnp.models.ffdnet import FFDNet

    net = FFDNet(depth=3, width=8)
    torch.save(net.state_dict(), tmp_path / "tiny.pt")
    prior = ScorePrior(denoiser={"weights": str(tmp_path / "tiny.pt"), "precision": "fp32"})
    x = torch.rand(2, 3, 16, 16)
    prior.setup(Problem(y=x, op=None, sigma=0.1))
    assert Capability.SCORE in prior.provides
    assert torch.allclose(prior.score(x, 0.1), (net(x, 0.1) - x) / 0.01, atol=1e-5)


@pytest.mark.parametrize("params, message", [
    (dict(sigma_min=1.0, sigma_max=1.0), "noise schedule must decrease"),
    (dict(sigma_min=0.5, sigma_max=0.1), "noise schedule must decrease"),
    (dict(levels=0), "solver.levels must be at least 1"),
    (dict(steps=0), "solver.steps must be at least 1"),
    (dict(samples=0), "solver.samples must be a positive integer"),
    (dict(likelihood="exact"), "solver.likelihood must be one of"),
])
def test_bad_schedule_is_one_clear_line(params, message):
    with pytest.raises(PnPError, match=message) as err:
        AnnealedLangevin(**params)
    assert "\n" not in str(err.value)


def test_score_prior_needs_a_score_solver():
    with pytest.raises(PnPError, match="incompatible: solver 'admm' needs prox, which prior 'score'"):
        check_compatible("score", "admm")


@pytest.mark.skipif(not (REPO / "conf" / "op" / "denoise.yaml").exists(), reason="operator configs not here yet")
def test_cli_bad_schedule_exits_nonzero_with_one_line(tmp_path, color_png):
    res = run_cli("prior=score", "op=denoise", "solver.sigma_min=2.0", f"image={color_png}",
                  f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the noise schedule must decrease")


@pytest.mark.skipif(not (REPO / "conf" / "op" / "denoise.yaml").exists(), reason="operator configs not here yet")
def test_cli_samples_mean_and_uncertainty(tmp_path, color_png):
    """The whole path: a (random, tiny) FFDNet file, K = 2 samples, the files and metrics."""
    import json

    from pnp.models.ffdnet import FFDNet

    torch.save(FFDNet(depth=3, width=8).state_dict(), tmp_path / "tiny.pt")
    out = tmp_path / "run"
    res = run_cli("prior=score", "op=denoise", "noise.sigma=25", f"prior.denoiser.weights={tmp_path / 'tiny.pt'}",
                  "solver=annealed_langevin", "solver.samples=2", "solver.levels=2", "solver.steps=2", f"image={color_png}",
                  f"hydra.run.dir={out}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["solver"] == "annealed_langevin" and metrics["iterations"] == 4
    assert {"uncertainty_scale", "psnr_single_sample_mean", "uncertainty_error_correlation"} <= set(metrics)
    assert (out / "samples" / "001.png").is_file() and (out / "uncertainty.png").is_file()


def test_kadkhodaie_reads_the_device_only_where_a_row_is_due():
    """With log_every = 7 the sampler looks at the chains (their mean, the stop check) only on
    every 7th step: the samples are those of log_every = 1, the stop at most 6 steps later."""
    from pnp.monitor import Monitor

    runs = {}
    for every in (1, 7):
        problem = gaussian_problem(0.05, seed=2)
        solver = Langevin(samples=3, h0=0.2, sigma_max=1.0, sigma_min=0.05)
        monitor = Monitor(solver.iterations, problem.x_true, log_every=every, progress=False)
        solver.solve(problem, ScorePrior(denoiser=gaussian_denoiser), monitor)
        runs[every] = (solver.outputs["samples"], monitor)
    (a, fine), (b, coarse) = runs[1], runs[7]
    assert torch.equal(a, b)
    assert fine.steps < solver.iterations  # every chain reached sigma_min: the run stopped early
    assert fine.steps <= coarse.steps < fine.steps + 7
    assert [r["iteration"] for r in coarse.rows] == list(range(7, coarse.steps + 1, 7))
