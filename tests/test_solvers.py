"""The five iterative solvers on a tiny deblurring problem with the TV prior."""
import math
from pathlib import Path
from types import SimpleNamespace

import deepinv
import pytest
import torch
from omegaconf import OmegaConf

from pnp.errors import PnPError
from pnp.io import default_image, load_image
from pnp.metrics import psnr
from pnp.monitor import Diverged, Monitor
from pnp.operator import Operator
from pnp.priors.tv import TV
from pnp.problem import Problem
from pnp.registry import SOLVERS
from pnp.runner import solver_params
from pnp.solvers.admm import ADMM
from pnp.solvers.fista import FISTA, operator_norm_sq
from pnp.solvers.fixed_point import FixedPoint
from pnp.solvers.gd import GradientDescent
from pnp.solvers.hqs import HQS
from pnp.solver import MAX_RESTARTS

CONF = Path(__file__).resolve().parents[1] / "conf"
NAMES = ["gd", "fista", "admm", "hqs", "fixed_point"]


class GaussianBlur(Operator):
    """Circular Gaussian blur (deepinv BlurFFT), standing in for the operators package."""

    def __init__(self, shape, std=1.6):
        super().__init__(shape)
        kernel = deepinv.physics.functional.gaussian_blur(sigma=(std, std))
        self.blur = deepinv.physics.BlurFFT(img_size=shape, filter=kernel)

    def A(self, x):
        return self.blur.A(x)

    def A_adjoint(self, y):
        return self.blur.A_adjoint(y)

    def data_step(self, y, z, rho, sigma):
        return self.blur.prox_l2(z, y, 1.0 / (rho * sigma**2))

    def baseline(self, y):
        return y


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def problem():
    x = load_image(default_image())
    x = (x[None] if x.dim() == 3 else x)[..., 180:212, 150:182].float()  # 32 x 32 colour crop
    op = GaussianBlur(tuple(x.shape[1:]))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    sigma = 7.65 / 255
    return Problem(y=op.A(x) + sigma * noise, op=op, sigma=sigma, x_true=x)


def tv_recommended(name: str) -> dict:
    """The solver's config with the TV prior's recommendations filled in, as the runner does."""
    solver_cfg = OmegaConf.to_container(OmegaConf.load(CONF / "solver" / f"{name}.yaml"))
    prior_cfg = OmegaConf.to_container(OmegaConf.load(CONF / "prior" / "tv.yaml"))
    return solver_params(solver_cfg, prior_cfg)


def solve(solver, problem, prior=None):
    prior = prior or TV()
    prior.setup(problem)
    monitor = Monitor(solver.iterations, x_true=problem.x_true, progress=False)
    x = solver.solve(problem, prior, monitor)
    monitor.close()
    return x, monitor


@pytest.fixture(scope="module")
def minimum(problem):
    """E at the TV minimiser (long FISTA)."""
    torch.set_num_threads(1)
    x, monitor = solve(FISTA(iterations=400), problem)
    return monitor.rows[-1]["objective"]


@pytest.mark.parametrize("name", NAMES)
def test_solver_restores_with_the_tv_recommendations(name, problem, minimum):
    x, monitor = solve(SOLVERS.build(name, **tv_recommended(name)), problem)
    gain = (psnr(x, problem.x_true) - psnr(problem.y, problem.x_true)).item()
    assert gain > 3.5  # measured 4.5-4.9 dB (observation 20.6 dB)
    objectives = [row["objective"] for row in monitor.rows]
    assert len(objectives) == monitor.total and all(math.isfinite(e) for e in objectives)
    assert objectives[-1] < 1.03 * minimum  # measured within 1.7% (gd: smoothed TV), others < 0.3%


def test_fista_and_admm_reach_the_same_minimiser(problem):
    a, ma = solve(FISTA(iterations=300), problem)
    b, mb = solve(ADMM(iterations=60, sigma_prox=60), problem)
    assert (a - b).pow(2).mean().sqrt().item() < 2e-4  # measured 4.5e-5
    ea, eb = ma.rows[-1]["objective"], mb.rows[-1]["objective"]
    assert abs(ea - eb) < 1e-5 * eb  # measured 1e-6


def test_operator_norm_is_estimated_from_above(problem):
    # circular blur with a normalised non-negative kernel: ||A||^2 = |DC gain|^2 = 1
    assert 1.0 <= operator_norm_sq(problem.op, problem.y) <= 1.03


def test_hqs_schedule_runs_from_sigma_start_to_the_noise_level(problem):
    sigmas = HQS(iterations=5, sigma_start=49).schedule(problem)
    assert sigmas[0] == pytest.approx(49 / 255) and sigmas[-1] == pytest.approx(problem.sigma_eff)
    ratios = [b / a for a, b in zip(sigmas, sigmas[1:])]
    assert max(ratios) == pytest.approx(min(ratios))  # log-spaced


def run_guarded(solver, problem, prior=None):
    prior = prior or TV()
    prior.setup(problem)
    monitor = Monitor(solver.iterations, x_true=problem.x_true, progress=False, residual=problem.residual)
    x = solver.run(problem, prior, monitor)
    monitor.close()
    return x


def test_a_diverging_step_backs_off_and_is_no_worse_than_the_start(problem, capsys):
    """A step far too large: the guard restarts from the best iterate with half the step, and
    after MAX_RESTARTS returns the best iterate with one warning line naming the step."""
    start = psnr(problem.op.init(problem.y), problem.x_true)
    for project in (True, False):
        solver = GradientDescent(iterations=50, step=1e6, project=project)
        x = run_guarded(solver, problem)
        assert torch.isfinite(x).all()
        assert psnr(x, problem.x_true) >= start - 1e-4
        assert solver.restarts == MAX_RESTARTS and solver.diverged and solver.step == 1e6 / 2**MAX_RESTARTS
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("warning: diverged") and "solver.step" in err[0]


def test_a_step_that_backing_off_cures_converges_without_warning(problem, capsys):
    """A step a few times too large: halving it makes it stable; the result beats the start."""
    prior = TV()
    prior.setup(problem)
    solver = GradientDescent(iterations=60, step=6.0)
    x = run_guarded(solver, problem, prior)
    assert 1 <= solver.restarts <= MAX_RESTARTS and not solver.diverged
    assert solver.params()["step"] == 6.0 / 2**solver.restarts
    assert psnr(x, problem.x_true) > psnr(problem.op.init(problem.y), problem.x_true)
    assert "warning" not in capsys.readouterr().err


class RecordingMonitor(Monitor):
    def __call__(self, t, x, objective=None):
        self.iterates.append(x.clone())
        super().__call__(t, x, objective)


@pytest.mark.parametrize("make", [lambda **kw: GradientDescent(step=0.5, momentum=0.5, **kw),
                                  lambda **kw: FixedPoint(step=0.002, **kw)],  # below 2 / L of smoothed TV
                         ids=["gd", "fixed_point"])
def test_average_returns_the_mean_of_the_last_iterates(make, problem):
    prior = TV()
    prior.setup(problem)
    results = {}
    for average in (0, 5):
        monitor = RecordingMonitor(12, x_true=problem.x_true, progress=False)
        monitor.iterates = []
        results[average] = make(iterations=12, average=average).solve(problem, prior, monitor)
    iterates = monitor.iterates  # of the second run; TV and both solvers are deterministic, so both runs' iterates agree
    assert torch.equal(results[0], iterates[-1])
    assert torch.allclose(results[5], torch.stack(iterates[-5:]).mean(0), atol=1e-6)
    assert not torch.allclose(results[5], iterates[-1], atol=1e-4)
    with pytest.raises(PnPError, match="solver.average"):
        make(iterations=12, average=13)


@pytest.mark.parametrize("name", NAMES)
def test_zero_iterations_is_an_error(name):
    with pytest.raises(PnPError, match="iterations"):
        SOLVERS.build(name, iterations=0)


def test_monitor_logs_rows_and_stops_on_nan():
    x_true = torch.rand(2, 3, 8, 8)
    monitor = Monitor(total=4, x_true=x_true, log_every=2, progress=False)
    for step in range(1, 5):
        monitor(step, x_true, objective=1.0)
    assert [row["iteration"] for row in monitor.rows] == [2, 4]
    assert monitor.rows[-1]["psnr"] == pytest.approx(120.0)  # MSE clamped at 1e-12
    monitor.step_param = "solver.rho"
    monitor(5, torch.full_like(x_true, float("nan")))  # between rows: no look at the iterate (no host sync)
    assert monitor.steps == 5 and len(monitor.rows) == 2
    with pytest.raises(Diverged, match="diverged at iteration 6.*solver.rho"):
        monitor(6, torch.full_like(x_true, float("nan")))
    monitor.close()


@pytest.mark.parametrize("op, iterations, end_min", [("sr", 24, 3), ("blur", 8, None)])
def test_prior_recommendations_per_operator(op, iterations, end_min):
    """The denoiser prior recommends DPIR's HQS settings: 8 iterations for deblurring,
    24 down to max(scale, noise) for super-resolution (solvers.by_op.sr)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("pnp.conf", version_base=None):
        cfg = compose("config", overrides=["prior=denoiser", f"op={op}", *(["op.scale=3"] if op == "sr" else [])])
    prior_cfg = OmegaConf.to_container(cfg.prior, resolve=True)
    params = solver_params(OmegaConf.to_container(cfg.solver, resolve=True), prior_cfg, op)
    assert params["iterations"] == iterations and params.get("sigma_end_min") == end_min
    solver = HQS(**params)
    problem = SimpleNamespace(sigma_eff=0.255 / 255)
    assert solver.schedule(problem)[-1] == pytest.approx((end_min or 0.255) / 255)


@pytest.mark.parametrize("op, iterations, step, average", [("blur", 240, 0.125, 48), ("sr", 300, 0.1, None)])
def test_daep_averages_the_last_iterates_when_deblurring(op, iterations, step, average):
    """DAEP recommends 240 steps of 0.125 and the mean of the last 48 iterates for deblurring only
    (solvers.by_op.blur); elsewhere the authors' 300 steps of 0.1."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("pnp.conf", version_base=None):
        cfg = compose("config", overrides=["prior=daep", f"op={op}"])
    params = solver_params(OmegaConf.to_container(cfg.solver, resolve=True),
                           OmegaConf.to_container(cfg.prior, resolve=True), op)
    assert (params["iterations"], params["step"], params.get("average")) == (iterations, step, average)
    assert GradientDescent(**params).average == (average or 0)


def test_recommended_average_follows_the_users_iterations():
    """solver.iterations=30 with DAEP's recommended mean of the last 48 of 240 iterates averages the
    last 6 (it used to fail: 'solver.average must be in [0, 30]'); a user's own average is kept."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("pnp.conf", version_base=None):
        for extra, expected in ((["solver.iterations=30"], 6), (["solver.iterations=30", "solver.average=30"], 30),
                                (["solver.iterations=480"], 96)):
            cfg = compose("config", overrides=["prior=daep", "op=blur", *extra])
            params = solver_params(OmegaConf.to_container(cfg.solver, resolve=True),
                                   OmegaConf.to_container(cfg.prior, resolve=True), "blur")
            assert GradientDescent(**params).average == expected, extra
