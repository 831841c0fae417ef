"""Contract tests over every registered prior and solver (built-in entries, entries being added
and plugins alike: the parametrization reads the registry).

Priors, for each capability they declare (``pnp.capabilities``), on a small float64 gray image:

- ``gradient``: grad R(x) against central finite differences of ``energy`` along random
  directions (where the prior defines an energy);
- ``prox``: the output p of prox(z, tau) minimises f(v) = tau R(v) + ||v - z||^2 / 2: f(p) is not
  above f at random perturbations of p at three scales (scico's ``prox_test``);
- ``score``: s(x, sigma) against Tweedie's formula (D(x, sigma) - x) / sigma^2 with the MMSE
  denoiser of a Gaussian, i.e. the exact score -(x - mu) / (s0^2 + sigma^2), for one sigma and
  for one sigma per image;
- ``batchable``: a batch of two images solved together equals the two solved alone.

Solvers: a run on a quadratic prior R(x) = ||x - m||^2 / 2 (gradient, prox, score and energy;
registered only for the test) on a small circular-blur problem, against the closed-form
minimiser x* = (A^T A / s^2 + lam I)^-1 (A^T y / s^2 + lam m) (by conjugate gradients); for a
sampler the mean of its samples against x*, which is also the posterior mean.

Learned priors get a tiny network through ``set_network``: a linear denoiser with a symmetric
Jacobian, D(x) = x - a(sigma) W^T W x (W a random 3x3 convolution), for which RED's and DAEP's
gradients are exactly those of their energies.
"""
from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F

from pnp.capabilities import Capability
from pnp.errors import PnPError
from pnp.monitor import Monitor
from pnp.operator import conjugate_gradients
from pnp.prior import Prior
from pnp.priors._denoiser_mixin import LearnedPrior
from pnp.problem import make_problem
from pnp.registry import PRIORS, SOLVERS, check_compatible

SIZE = 16  # image side: room for 8x8 patch priors
NOISE = 25.5  # 0-255 units: s = 0.1 on the [0, 1] scale


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: one thread is faster than two on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- test denoisers

class SymmetricDenoiser(torch.nn.Module):
    """D(x, sigma) = x - a(sigma) W^T W x: linear, with a symmetric Jacobian (a tiny conv net;
    conv2d with zero padding and conv_transpose2d are an exact adjoint pair)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = torch.nn.Parameter(0.3 * torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64),
                                         requires_grad=False)

    def forward(self, x, sigma):
        a = (0.05 + torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)).clamp(max=0.2)
        w = self.weight.to(x.dtype).expand(4, x.shape[1], 3, 3) / x.shape[1]
        return x - a * F.conv_transpose2d(F.conv2d(x, w, padding=1), w, padding=1)


MU, S0 = 0.5, 0.2  # the Gaussian image model N(MU, S0^2 I) of the score contract


class GaussianDenoiser(torch.nn.Module):
    """The MMSE denoiser of N(MU, S0^2 I): D(x, sigma) = MU + S0^2 / (S0^2 + sigma^2) (x - MU)."""

    def forward(self, x, sigma):
        s2 = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1) ** 2
        return MU + S0**2 / (S0**2 + s2) * (x - MU)


# ----------------------------------------------------------------------------- problems and priors

def smooth_images(n: int = 1, size: int = SIZE) -> torch.Tensor:
    """n smooth gray images in [0.2, 0.8], n x 1 x size x size, float32."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    return torch.stack([0.5 + 0.3 * torch.sin(2 * math.pi * (1 + i) * xx + 3 * yy + i) for i in range(n)])[:, None]


def float64_problem(x: torch.Tensor, op: dict, noise: float = NOISE, seed: int = 0):
    """make_problem (observations drawn in float32), then y, x_true and the operator in float64."""
    problem = make_problem(x, op, {"name": "gaussian", "sigma": noise}, seed=seed)
    problem.y, problem.x_true = problem.y.double(), problem.x_true.double()
    problem.op = problem.op.double()
    return problem


DENOISE = {"name": "denoise"}
CIRCULAR_BLUR = {"name": "blur", "kernel": "gaussian", "kernel_size": 5, "kernel_sigma": 1.0, "boundary": "circular"}

# Settings that make a prior's method exact enough to be checked against its definition.
PRIOR_SETTINGS = {
    # FGP run to a duality-gap RMS of 1e-9; eps (the smoothing of the gradient's |D x|) near 0, since
    # energy() is the unsmoothed TV (with the default 1e-3 the two differ by 2% on this image)
    "tv": {"prox_iterations": 20000, "prox_tol": 1e-9, "eps": 1e-9},
    "red": {"inner_iterations": 300},  # the ADMM v-step iterated to its fixed point, the prox
    "dip": {"channels": 8, "scales": 2},  # a small network that fits a 32x32 image
}


def build_prior(name: str, net: torch.nn.Module | None = None, **settings):
    prior = PRIORS.build(name, **{**PRIOR_SETTINGS.get(name, {}), **settings})
    if isinstance(prior, LearnedPrior):
        prior.set_network(net if net is not None else SymmetricDenoiser())
    return prior.double()


def provides(name: str, capability: Capability) -> bool:
    try:
        return capability in PRIORS.get(name).provides
    except PnPError:
        return False


def prior_cases(capability: Capability, reasons: dict[str, str]) -> list:
    """One case per registered prior that declares ``capability``; ``reasons``: why the contract
    cannot apply to an entry (it is then skipped, with that reason)."""
    cases = []
    for name in PRIORS.names():
        if not provides(name, capability):
            continue
        marks = [pytest.mark.skip(reason=reasons[name])] if name in reasons else []
        cases.append(pytest.param(name, marks=marks, id=name))
    return cases


def energy_or_skip(prior, name: str):
    """``prior.energy`` as a function, or skip: there is no R to check against."""
    def energy(v):
        return prior.energy(v)
    probe = torch.full((1, 1, SIZE, SIZE), 0.5, dtype=torch.float64)
    if prior.energy(probe) is None:
        pytest.skip(f"prior '{name}' defines no energy R(x) (energy() is None): nothing to differentiate "
                    "or minimise against")
    return energy


# ----------------------------------------------------------------------------- the contracts

def check_gradient(prior, problem, energy, directions: int = 3, h: float = 1e-5, rtol: float = 1e-6):
    """<grad R(x), d> = (R(x + h d) - R(x - h d)) / 2h for random d. ``setup`` before each
    evaluation: a prior with a noisy input (DAEP, DMSP) then draws the same noise every time."""
    g = torch.Generator().manual_seed(1)
    x = (0.3 + 0.4 * torch.rand(problem.x_true.shape, generator=g, dtype=torch.float64))
    prior.setup(problem)
    grad = prior.grad(x.clone(), 1)
    for _ in range(directions):
        d = torch.randn(x.shape, generator=g, dtype=torch.float64)
        prior.setup(problem)
        up = float(energy(x + h * d).sum())
        prior.setup(problem)
        down = float(energy(x - h * d).sum())
        finite = (up - down) / (2 * h)
        assert float((grad * d).sum()) == pytest.approx(finite, rel=rtol, abs=1e-9)


def check_prox(prior, problem, energy, tau: float = 0.05, trials: int = 12):
    """p = prox(z, tau) is not beaten by random perturbations of p at scales 1e-2, 1e-3, 1e-4 on
    f(v) = tau R(v) + ||v - z||^2 / 2 (up to a relative 1e-12)."""
    g = torch.Generator().manual_seed(2)
    z = problem.y + 0.05 * torch.randn(problem.y.shape, generator=g, dtype=torch.float64)
    prior.setup(problem)
    p = prior.prox(z.clone(), tau)

    def objective(v):
        return float(tau * energy(v).sum() + 0.5 * (v - z).pow(2).sum())

    best = objective(p)
    for scale in (1e-2, 1e-3, 1e-4):
        for _ in range(trials):
            other = objective(p + scale * torch.randn(p.shape, generator=g, dtype=torch.float64))
            assert best <= other + 1e-12 * abs(other), f"f(prox) = {best} > f(perturbed, scale {scale}) = {other}"


def check_score(prior, x: torch.Tensor):
    """s(x, sigma) = (D(x, sigma) - x) / sigma^2 = -(x - MU) / (S0^2 + sigma^2) for the Gaussian
    model's MMSE denoiser: one sigma, and one sigma per image (B x 1 x 1 x 1)."""
    for sigma in (0.05, torch.tensor([0.3, 0.02], dtype=torch.float64).view(-1, 1, 1, 1)):
        s2 = torch.as_tensor(sigma, dtype=x.dtype) ** 2
        torch.testing.assert_close(prior.score(x, sigma), -(x - MU) / (S0**2 + s2), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", prior_cases(Capability.GRADIENT, {
    "dmsp": "DMSP's gradient is the mean-shift vector of the smoothed image density, whose log has no "
            "closed form; its energy ||x - D(x + eta)||^2 / 2 is logged, not differentiated "
            "(tests/test_priors.py checks the mean-shift vector)",
}))
def test_gradient_is_the_derivative_of_the_energy(name):
    problem = float64_problem(smooth_images(), DENOISE)
    prior = build_prior(name)
    check_gradient(prior, problem, energy_or_skip(prior, name))


@pytest.mark.parametrize("name", prior_cases(Capability.PROX, {
    "denoiser": "the denoiser prior's prox is D(z, sqrt(tau)), a denoiser with no energy R behind it (scico's "
                "pseudo-functional); tests/test_priors.py checks that it calls D at sqrt(tau)",
}))
def test_prox_minimises_its_objective(name):
    problem = float64_problem(smooth_images(), DENOISE)
    prior = build_prior(name)
    check_prox(prior, problem, energy_or_skip(prior, name))


@pytest.mark.parametrize("name", prior_cases(Capability.SCORE, {}))
def test_score_follows_tweedie(name):
    prior = build_prior(name, GaussianDenoiser())
    if not isinstance(prior, LearnedPrior):
        pytest.skip(f"prior '{name}' is not built on a denoiser that the test can replace by the Gaussian's MMSE one")
    problem = float64_problem(smooth_images(2), DENOISE)
    prior.setup(problem)
    check_score(prior, problem.y)


def solver_is_batchable(cls) -> bool:
    """``batchable`` of a solver class, whether a class attribute or the base class's property."""
    value = inspect.getattr_static(cls, "batchable")
    return bool(value.fget(cls)) if isinstance(value, property) else bool(value)


def batchable_cases() -> list:
    cases = []
    for name in PRIORS.names():
        try:
            cls = PRIORS.get(name)
        except PnPError:
            continue
        solver = next((s for s in SOLVERS.names() if _fits_and_batches(cls, s)), None)
        marks = [] if solver else [pytest.mark.skip(
            reason=f"no registered solver that fits prior '{name}' solves batches (its solvers hold one image's "
                   "chains or network in the batch dimension)")]
        cases.append(pytest.param(name, solver, marks=marks, id=name))
    return cases


def _fits_and_batches(prior_cls, solver_name: str) -> bool:
    try:
        cls = SOLVERS.get(solver_name)
    except PnPError:
        return False
    return set(cls.requires) <= set(prior_cls.provides) and solver_is_batchable(cls)


@pytest.mark.parametrize("name, solver_name", batchable_cases())
def test_a_batch_of_two_equals_two_single_runs(name, solver_name):
    prior = build_prior(name)
    if not prior.batchable:
        pytest.skip(f"prior '{name}' with its default settings keeps per-image state (batchable is false)")
    images = smooth_images(2)

    def solve(x):
        problem = float64_problem(x, DENOISE)
        solver = SOLVERS.build(solver_name, **({} if solver_name == "closed_form" else {"iterations": 3}))
        prior.setup(problem)
        return solver.run(problem, prior, Monitor(solver.iterations, problem.x_true, progress=False,
                                                  residual=problem.residual))

    together = solve(images)
    for i in range(2):
        torch.testing.assert_close(together[i:i + 1], solve(images[i:i + 1]), rtol=1e-9, atol=1e-9)


def mutation_cases() -> list:
    cases = [pytest.param(name, {}, id=name) for name in PRIORS.names()]
    # the one that replaces a kernel while solving: its estimate must live in a copy
    cases.append(pytest.param("dmsp", {"kernel_blind": True, "kernel_estimate": "none"}, id="dmsp-kernel_blind"))
    return cases


@pytest.mark.parametrize("name, settings", mutation_cases())
def test_a_run_leaves_the_given_operator_unchanged(name, settings):
    """Every buffer of the operator the problem was built with (the blur kernel among them) is the
    same after a short run of the first fitting solver that takes ``iterations``."""
    cls = PRIORS.get(name)
    solver_name = next((s for s in SOLVERS.names() if _fits(cls, s)
                        and "iterations" in inspect.signature(SOLVERS.get(s)).parameters), None)
    if solver_name is None:
        pytest.skip(f"no registered solver that fits prior '{name}' takes solver.iterations")
    problem = float64_problem(smooth_images(1, 32), CIRCULAR_BLUR)
    given = problem.op
    before = {key: value.clone() for key, value in given.state_dict().items()}
    prior = build_prior(name, **settings)
    solver = SOLVERS.build(solver_name, iterations=1 if solver_name == "closed_form" else 3)
    prior.setup(problem)
    solved = prior.problem_to_solve(problem)
    solver.run(solved, prior, Monitor(solver.iterations, problem.x_true, progress=False, residual=solved.residual))
    after = given.state_dict()
    assert problem.op is given
    assert before.keys() == after.keys() and all(torch.equal(before[key], after[key]) for key in before)
    if settings.get("kernel_blind"):  # the run did estimate a kernel, in the solved problem's copy
        assert prior.outputs["kernel_error"] > 0 and not torch.equal(solved.op.kernel, given.kernel)


def _fits(prior_cls, solver_name: str) -> bool:
    try:
        return set(SOLVERS.get(solver_name).requires) <= set(prior_cls.provides)
    except PnPError:
        return False


# ----------------------------------------------------------------------------- solvers

class QuadraticPrior(Prior):
    """R(x) = ||x - m||^2 / 2, the density exp(-lam R) = N(m, I / lam) (lam = ``weight``)."""

    provides = frozenset({Capability.GRADIENT, Capability.PROX, Capability.SCORE})

    def __init__(self, weight: float = 50.0, m: float = 0.5):
        super().__init__(weight=weight)
        self.m = float(m)

    def energy(self, x):
        return 0.5 * (x - self.m).pow(2).flatten(1).sum(1)

    def grad(self, x, step=0):
        return x - self.m

    def prox(self, z, tau):
        return (z + tau * self.m) / (1 + tau)

    def score(self, x, sigma):
        """grad log of N(m, I / lam) smoothed by N(0, sigma^2 I)."""
        return -(x - self.m) / (1.0 / self.weight + torch.as_tensor(sigma, dtype=x.dtype) ** 2)


@pytest.fixture
def quadratic(monkeypatch) -> str:
    """QuadraticPrior registered as 'contract_quadratic' for this test only (the registry's
    tables are restored afterwards)."""
    monkeypatch.setattr(PRIORS, "_targets", dict(PRIORS._targets))
    monkeypatch.setattr(PRIORS, "_classes", dict(PRIORS._classes))
    PRIORS.register("contract_quadratic", QuadraticPrior)
    return "contract_quadratic"


def minimiser(problem, prior) -> torch.Tensor:
    """x* = (A^T A / s^2 + lam I)^-1 (A^T y / s^2 + lam m) by conjugate gradients in float64."""
    s2, lam, op = problem.sigma_eff**2, prior.weight, problem.op
    b = op.A_adjoint(problem.y) / s2 + lam * prior.m
    return conjugate_gradients(lambda v: op.A_adjoint(op.A(v)) / s2 + lam * v, b, torch.zeros_like(b),
                               iterations=1000, tol=1e-14)


def is_sampler(cls) -> bool:
    """A solver that needs a score samples the posterior (``Capability.SCORE``)."""
    return Capability.SCORE in cls.requires


# Settings and the RMS tolerance against x* of the optimisers (other solvers: their defaults, 1e-6).
SOLVER_SETTINGS = {
    "gd": ({"iterations": 300}, 1e-9),  # a convergent descent
    "fixed_point": ({"iterations": 50}, 1e-9),  # exact after one step for a quadratic prior
    "fista": ({"iterations": 300}, 1e-8),  # a convergent proximal method
    "admm": ({"iterations": 300, "rho": 150.0}, 1e-8),  # rho near the Hessian's scale, 1 / s^2 + lam
    # HQS at a constant sigma = s (the noise level) is a penalty method: its fixed point is x* for
    # the weight lam / (1 + sigma^2), then shrunk by prox at tau = sigma^2; both within
    # sigma^2 max|x* - m| = 2.4e-3 of x* (measured: 7.6e-4 after 1000 iterations)
    "hqs": ({"iterations": 1000, "sigma_start": NOISE}, 2.4e-3),
}
SAMPLES = 16  # chains of a sampler (on the denoising problem, where the posterior is diagonal)


@pytest.mark.parametrize("solver_name", SOLVERS.names())
def test_solver_reaches_the_quadratic_minimiser(solver_name, quadratic):
    cls = SOLVERS.get(solver_name)
    missing = set(cls.requires) - set(QuadraticPrior.provides)
    if missing:
        pytest.skip(f"solver '{solver_name}' needs {', '.join(sorted(map(str, missing)))}, which a quadratic "
                    "prior does not provide: its own tests check it on problems with a known answer")
    check_compatible(quadratic, solver_name)
    sampler = is_sampler(cls)
    problem = float64_problem(smooth_images(), DENOISE if sampler else CIRCULAR_BLUR)
    prior = PRIORS.build(quadratic)
    target = minimiser(problem, prior)
    assert 0 < float(target.min()) and float(target.max()) < 1  # inside the box that gd/fixed_point project on
    settings, tol = SOLVER_SETTINGS.get(solver_name, ({}, 1e-6))
    chains = SAMPLES if "samples" in inspect.signature(cls).parameters else 1
    if sampler:
        settings = {"samples": SAMPLES} if chains > 1 else {}
    solver = SOLVERS.build(solver_name, **settings)

    def run():
        prior.setup(problem)
        return solver.run(problem, prior, Monitor(solver.iterations, problem.x_true, progress=False,
                                                  residual=problem.residual))

    x = run()
    assert torch.isfinite(x).all() and not solver.diverged
    rms = float((x - target).pow(2).mean().sqrt())
    if not sampler:
        assert rms <= tol, f"RMS distance to the minimiser {rms:.3g} > {tol:.3g}"
        return
    # A sampler: the mean of its K chains estimates the posterior mean, which for this Gaussian
    # posterior is x*, with a standard error of the posterior standard deviation
    # 1 / sqrt(1 / s^2 + lam) over sqrt(K) per pixel; 3 of them leave room for the sampler's own
    # bias (measured, K = 16: annealed Langevin 0.021, Kadkhodaie 0.045, DDRM 0.021, SNIPS 0.037;
    # bound 0.061). Seeded by the problem: a second run gives the same samples.
    error = 1.0 / math.sqrt((1.0 / problem.sigma_eff**2 + prior.weight) * chains)
    assert rms <= 3 * error, f"RMS distance of the sample mean to the posterior mean {rms:.3g} > {3 * error:.3g}"
    torch.testing.assert_close(run(), x, rtol=0, atol=0)


# ----------------------------------------------------------------------------- the checks can fail

class Wrong(QuadraticPrior):
    """The quadratic prior with every method off by a little."""

    def grad(self, x, step=0):
        return 1.01 * (x - self.m)

    def prox(self, z, tau):
        return (z + tau * self.m) / (1 + tau) + 1e-3

    def score(self, x, sigma):
        return 1.01 * super().score(x, sigma)


def test_the_checks_accept_the_quadratic_prior_and_reject_a_wrong_one():
    problem = float64_problem(smooth_images(), DENOISE)
    right, wrong = QuadraticPrior().double(), Wrong().double()
    check_gradient(right, problem, right.energy)
    check_prox(right, problem, right.energy)
    with pytest.raises(AssertionError):
        check_gradient(wrong, problem, wrong.energy)
    with pytest.raises(AssertionError):
        check_prox(wrong, problem, wrong.energy)
    gaussian = QuadraticPrior(weight=1 / S0**2, m=MU)
    check_score(gaussian, problem.y.expand(2, -1, -1, -1))
    with pytest.raises(AssertionError):
        check_score(Wrong(weight=1 / S0**2, m=MU), problem.y.expand(2, -1, -1, -1))
