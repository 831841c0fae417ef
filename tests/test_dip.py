"""Deep Image Prior: the network, the fit (averaging, backtracking), per-task defaults, bad input."""
import pytest
import torch

from conftest import smooth_image
from pnp.api import restore
from pnp.errors import PnPError
from pnp.metrics import psnr
from pnp.operator import Operator
from pnp.problem import Problem, make_problem
from pnp.priors.dip import DeepImagePrior, SkipNet
from pnp.registry import check_compatible
from pnp.solvers.dip import DIPFit


pytestmark = pytest.mark.usefixtures("one_thread")


class Identity(Operator):
    name = "denoise"

    def A(self, x):
        return x

    def A_adjoint(self, y):
        return y


class Glitch(Identity):
    """The identity, except that its ``bad``-th call returns garbage (a sudden drop of the fit)."""

    def __init__(self, shape, bad: int):
        super().__init__(shape)
        self.calls, self.bad = 0, bad

    def A(self, x):
        self.calls += 1
        return x + 1.0 if self.calls == self.bad else x


class Rows:
    should_stop, step_param = False, ""

    def __init__(self):
        self.rows = []

    def __call__(self, step, x, objective=None):
        self.rows.append((step, x.clone(), objective))


def noisy_problem(op_cls=Identity, size=64, seed=0, **op_kw) -> Problem:
    x = torch.from_numpy(smooth_image(size, 3)).permute(2, 0, 1)[None].float() / 255
    g = torch.Generator().manual_seed(0)
    y = x + 25 / 255 * torch.randn(x.shape, generator=g)
    return Problem(y=y, op=op_cls(x.shape[1:], **op_kw), sigma=25 / 255, x_true=x, seed=seed)


def fit(problem, prior=None, **params):
    prior = prior or DeepImagePrior(channels=32)
    prior.setup(problem)
    solver, monitor = DIPFit(**params), Rows()
    return solver.solve(problem, prior, monitor), solver, monitor


def test_skip_network_is_the_authors():
    """5 scales of 128 channels, 4 skip channels: the parameter count of their ``skip``
    (conv + batch-norm parameters, counted by hand from models/skip.py) and a sigmoid output."""
    net = SkipNet()
    level = lambda cin: (cin * 4 + 4 + 8) + (cin * 9 * 128 + 128 + 256) + (128 * 9 * 128 + 128 + 256) \
        + 2 * 132 + (132 * 9 * 128 + 128 + 256) + (128 * 128 + 128 + 256)
    assert sum(p.numel() for p in net.parameters()) == level(32) + 4 * level(128) + 128 * 3 + 3
    out = net(torch.rand(1, 32, 64, 64) * 0.1)
    assert out.shape == (1, 3, 64, 64) and 0 < out.min() and out.max() < 1


def test_channels_last_network_has_the_same_gradients():
    """The channels_last path (bf16's, with its gradient-layout hook) changes memory layout only."""
    torch.manual_seed(0)
    net = SkipNet(4, 3, channels=8, skip=2, scales=3)
    z = torch.rand(1, 4, 32, 32)
    grads = []
    for memory in (torch.contiguous_format, torch.channels_last):
        net.zero_grad()
        net.to(memory_format=memory)(z.contiguous(memory_format=memory)).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert (grads[0] - grads[1]).norm() < 1e-5 * grads[0].norm()  # fp32 summation order only


def test_dip_denoises_with_averaging():
    """64 x 64, sigma 25, 120 Adam steps of a 32-channel skip net (measured +5.5 dB, 25.9 vs 20.3 dB)."""
    problem = noisy_problem()
    x, solver, monitor = fit(problem, iterations=120, ema=0.9)
    gain = float(psnr(x, problem.x_true) - psnr(problem.y, problem.x_true))
    assert gain > 3.0, gain
    assert len(monitor.rows) == 120 and solver.outputs["backtracks"] == 0
    # the result is the running average, not the last iterate
    assert torch.equal(x, monitor.rows[-1][1]) and not torch.equal(monitor.rows[-1][1], monitor.rows[-2][1])


def test_backtracking_reloads_the_previous_parameters():
    """The 20th operator call spoils the fit by > 5 dB: those parameters are reloaded, the step is
    skipped (the average is unchanged that iteration) and the fit goes on."""
    problem = noisy_problem(Glitch, bad=20)
    x, solver, monitor = fit(problem, iterations=40)
    assert solver.outputs["backtracks"] == 1
    assert torch.equal(monitor.rows[19][1], monitor.rows[18][1])
    assert not torch.equal(monitor.rows[20][1], monitor.rows[19][1])
    assert torch.isfinite(x).all()


def test_fixed_seed_gives_identical_fits():
    a = fit(noisy_problem(seed=1), iterations=3)[0]
    b = fit(noisy_problem(seed=1), iterations=3)[0]
    c = fit(noisy_problem(seed=2), iterations=3)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("op, iterations, reg_noise, skip, upsample", [
    ({"name": "denoise"}, 3000, 1 / 30, 4, "bilinear"),
    ({"name": "sr", "scale": 4}, 2000, 0.03, 4, "bilinear"),
    ({"name": "inpaint", "missing": 0.5}, 6000, 0.03, 128, "nearest"),
    ({"name": "blur"}, 2000, 0.03, 4, "bilinear"),
])
def test_per_task_defaults_of_the_authors(op, iterations, reg_noise, skip, upsample):
    """The authors' per-notebook settings come from conf/prior/dip.yaml (presets and
    solvers.by_op), through the runner's build_triple."""
    from pnp.api import compose_config
    from pnp.runner import build_triple

    problem = make_problem(torch.rand(1, 3, 64, 64), op, {"name": "gaussian", "sigma": 0.0})
    prior, solver = build_triple(compose_config(op["name"], "dip", overrides={"prior.channels": 8}))
    assert solver.settings(problem) == (iterations, pytest.approx(reg_noise, rel=1e-5))
    assert DIPFit(iterations=7, reg_noise=0.0).settings(problem) == (7, 0.0)
    prior.setup(problem)
    level = prior.net[0]
    assert level.skip[0].out_channels == skip and level.upsample.mode == upsample


def test_dip_works_through_an_operator_and_pads_odd_sizes():
    """SR x4 on a 72 x 80 image: z is padded to 96 x 96, the output cropped back."""
    problem = make_problem(torch.rand(1, 3, 72, 80), {"name": "sr", "scale": 4}, {"name": "gaussian", "sigma": 0.0})
    x, _, _ = fit(problem, prior=DeepImagePrior(channels=8, precision="bf16"), iterations=2)
    assert x.shape == (1, 3, 72, 80) and x.dtype == torch.float32


def test_too_small_image_is_one_clear_line():
    with pytest.raises(PnPError, match=r"32x32, smaller than the 64x64 minimum of its 5 scales") as err:
        DeepImagePrior().setup(noisy_problem(size=32))
    assert "\n" not in str(err.value)
    with pytest.raises(PnPError, match="the image is 32x32"):
        restore(torch.rand(1, 3, 32, 32), op="denoise", prior="dip", **{"solver.iterations": 1})


@pytest.mark.parametrize("params, message", [
    (dict(lr=0), "solver.lr must be > 0"),
    (dict(ema=1.0), r"solver.ema must be in \[0, 1\)"),
    (dict(iterations=0), "solver.iterations must be at least 1"),
])
def test_bad_fit_parameters(params, message):
    with pytest.raises(PnPError, match=message):
        DIPFit(**params)


def test_dip_pairs_only_with_its_solver():
    with pytest.raises(PnPError, match="incompatible: solver 'admm' needs prox, which prior 'dip' does not provide"):
        check_compatible("dip", "admm")
    check_compatible("dip", "dip")
