"""Classical denoisers (``prior.denoiser.name=bm3d|nlm``) and the Wiener filter (``prior=wiener``,
``solver=closed_form``): they restore, they are refused where they cannot serve, in one line, and
the run record names what ran."""
from __future__ import annotations

import sys

import pytest
import torch

from pnp.api import compose_config
from pnp.errors import PnPError
from pnp.io import default_image, load_image
from pnp.metrics import psnr
from pnp.models.classical import BM3D, NonLocalMeans
from pnp.operators.blur import Blur
from pnp.operators.denoise import Denoise
from pnp.operators.sr import SuperResolution
from pnp.registry import PRIORS, check_compatible
from pnp.records import plain as _plain
from pnp.runner import build_triple, solve_problem
from pnp.problem import make_problem


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def crop(size: int, channels: int, top: int = 100, left: int = 100) -> torch.Tensor:
    """A size x size crop of the built-in image (gray: the channel mean)."""
    x = load_image(default_image())
    x = (x[None] if x.dim() == 3 else x)[..., top:top + size, left:left + size].float()
    return x.mean(1, keepdim=True) if channels == 1 else x


def noisy(x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    return x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


def run(prior: str, op: str, x: torch.Tensor, **overrides):
    """Restore x under (prior, op) with the config's defaults and ``overrides``: (PSNR restored,
    PSNR observed, run record's params)."""
    cfg = compose_config(op, prior, None, "gaussian", overrides)
    prior_obj, solver = build_triple(cfg)
    problem = make_problem(x, _plain(cfg.op), _plain(cfg.noise), seed=0)
    restored, metrics, _, _ = solve_problem(problem, prior_obj, solver, progress=False)
    return float(psnr(restored, x)), float(psnr(problem.op.baseline(problem.y).clamp(0, 1), x)), metrics["params"]


def cli(args, tmp_path, capfd, monkeypatch) -> tuple[int, str]:
    """``python -m pnp ARGS`` in this process: (exit code, stderr)."""
    from pnp.__main__ import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pnp", *args, "progress=false"])
    capfd.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    return code, capfd.readouterr().err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------ the denoisers themselves

# (denoiser, channels) -> least gain over the noisy 48 x 48 crop at sigma 25; measured 5.9 / 7.7
# (bm3d gray / colour) and 4.2 / 4.4 dB (nlm)
GAINS = {("bm3d", 1): 4.5, ("bm3d", 3): 6.0, ("nlm", 1): 3.0, ("nlm", 3): 3.0}


@pytest.mark.parametrize("name, channels", list(GAINS))
def test_classical_denoiser_beats_the_noisy_input(name, channels):
    x = crop(48, channels)
    y = noisy(x, 25 / 255)
    denoiser = {"bm3d": BM3D, "nlm": NonLocalMeans}[name]()
    out = denoiser(y, 25 / 255)
    assert out.shape == y.shape and out.dtype == y.dtype and out.device == y.device
    gain = float(psnr(out, x) - psnr(y, x))
    assert gain > GAINS[name, channels], gain


def test_classical_denoiser_takes_one_sigma_per_image_and_keeps_the_dtype():
    x = crop(32, 1).repeat(2, 1, 1, 1).double()
    y = noisy(x, 10 / 255)
    out = NonLocalMeans()(y, torch.tensor([10 / 255, 0.0]))
    assert out.dtype == torch.float64
    assert torch.equal(out[1], y[1])  # sigma 0: nothing removed
    assert float(psnr(out[:1], x[:1])) > float(psnr(y[:1], x[:1])) + 2
    assert not NonLocalMeans.differentiable and not BM3D.differentiable


# ------------------------------------------------------------------ as the denoiser of a prior

@pytest.mark.parametrize("prior, overrides", [
    ("denoiser", {"solver.iterations": 4}),
    ("red", {"solver.iterations": 5}),
])
def test_prior_with_bm3d_beats_the_observation_and_records_it(prior, overrides):
    x = crop(32, 1)
    blur = {"op.boundary": "circular", "op.kernel_size": 7, "op.kernel_sigma": 1.2, "noise.sigma": 7.65}
    restored, observed, params = run(prior, "blur", x, **blur, **overrides, **{"prior.denoiser.name": "bm3d"})
    assert restored > observed + 3.0, (restored, observed)  # measured +6.1 (denoiser), +4.9 dB (red)
    record = params["prior"]["denoiser"]
    assert record["name"] == "bm3d" and record["package"].startswith("bm3d ")
    assert "weights" not in record and "grid_shift" not in record  # the network's settings did not apply


def test_the_network_is_recorded_by_name_and_is_differentiable():
    prior = PRIORS.build("denoiser")
    assert prior.params()["denoiser"]["name"] == "network"
    nlm = PRIORS.build("dmsp", denoiser={"name": "nlm", "grid_shift": True, "precision": "bf16"})
    assert nlm.params()["denoiser"] == {"name": "nlm", **NonLocalMeans().settings()}
    from pnp.models.loading import load_denoiser

    assert load_denoiser().differentiable is True


def test_daep_with_a_classical_denoiser_is_refused_in_one_line(tmp_path, capfd, monkeypatch):
    code, err = cli(["prior=daep", "prior.denoiser.name=bm3d"], tmp_path, capfd, monkeypatch)
    line = one_line_error(err)
    assert code != 0 and "differentiable" in line and "prior.denoiser.name=bm3d" in line
    assert "red" in line and "dmsp" in line and "daep" not in line.split(";")[-1]
    assert not (tmp_path / "outputs").exists()  # refused before any work


def test_unknown_denoiser_name_and_missing_package_are_one_line_errors(monkeypatch):
    with pytest.raises(PnPError, match="prior.denoiser.name must be one of network, bm3d, nlm"):
        PRIORS.build("red", denoiser={"name": "wavelet"})
    monkeypatch.setitem(sys.modules, "bm3d", None)  # import bm3d now fails
    with pytest.raises(PnPError, match="pip install bm3d") as err:
        PRIORS.build("red", denoiser={"name": "bm3d"})
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ the Wiener filter

def test_transfer_function_diagonalises_circular_blur_and_denoising():
    x = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    for op in (Blur((3, 20, 24), kernel_size=7, boundary="circular"), Denoise((3, 20, 24))):
        k = op.transfer_function()
        assert torch.allclose(torch.fft.ifft2(k * torch.fft.fft2(x)).real, op.A(x), atol=1e-5)
    assert Blur((3, 20, 24), kernel_size=7).transfer_function() is None  # valid boundary
    assert SuperResolution((3, 20, 24), scale=2).transfer_function() is None


def test_wiener_constant_ratio_is_the_textbook_formula():
    x = crop(32, 3)
    cfg = compose_config("blur", "wiener", None, "gaussian", {"op.boundary": "circular", "op.kernel_size": 9,
                                                                "prior.spectrum": "constant", "prior.nsr": 0.02})
    prior, solver = build_triple(cfg)
    problem = make_problem(x, _plain(cfg.op), _plain(cfg.noise), seed=0)
    prior.setup(problem)
    padded = torch.nn.functional.pad(problem.op.kernel, (0, 23, 0, 23))
    k = torch.fft.fft2(torch.roll(padded, (-4, -4), (0, 1)))  # the kernel's centre tap at the origin
    expected = torch.fft.ifft2(k.conj() * torch.fft.fft2(problem.y) / (k.abs() ** 2 + 0.02)).real
    assert torch.allclose(prior.estimate(problem), expected, atol=1e-5)
    assert prior.params() == {"spectrum": "constant", "weight": 1.0, "nsr": 0.02}


@pytest.mark.parametrize("op, overrides, margin", [
    ("blur", {"op.boundary": "circular", "noise.sigma": 7.65}, 1.0),  # measured +1.65 dB
    ("denoise", {"noise.sigma": 25}, 2.0),  # measured +3.15 dB
])
def test_wiener_beats_the_observation(op, overrides, margin):
    x = crop(96, 3, top=80, left=80)
    restored, observed, params = run("wiener", op, x, **overrides)
    assert restored > observed + margin, (restored, observed)
    assert params["prior"] == {"spectrum": "power_law", "weight": 1.0, "exponent": 2.25}
    assert params["solver"] == {"iterations": 1}


def test_wiener_on_an_operator_without_a_fourier_form_is_refused(tmp_path, capfd, monkeypatch):
    code, err = cli(["prior=wiener", "op=sr"], tmp_path, capfd, monkeypatch)
    line = one_line_error(err)
    assert code != 0 and "op=blur op.boundary=circular" in line and "op=denoise" in line


def test_closed_form_fits_only_a_closed_form_prior():
    check_compatible("wiener", "closed_form")
    with pytest.raises(PnPError, match="priors that fit 'closed_form': wiener"):
        check_compatible("tv", "closed_form")
    with pytest.raises(PnPError, match="solvers that fit 'wiener': closed_form"):
        check_compatible("wiener", "fista")
