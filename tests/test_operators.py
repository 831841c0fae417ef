"""Operators: a conformance suite over every registered operator, then each operator's own checks."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from pnp.errors import PnPError
from pnp.registry import OPERATORS

ROOT = Path(__file__).resolve().parents[1]
KERNELS = Path(os.environ.get("PNP_SHARED", ROOT.parent / "shared")) / "data" / "kernels"
needs_kernels = pytest.mark.skipif(not KERNELS.is_dir(), reason=f"no shared kernels at {KERNELS}")

SHAPE = (3, 32, 32)
SMALL = {  # small-test overrides of the conf/op/<name>.yaml values
    "blur": {"kernel_size": 7},
    "sr": {"scale": 2},
}
VARIANTS = [  # extra parameter sets of built-in operators, checked like the defaults
    ("blur", {"boundary": "circular", "kernel": "motion", "kernel_size": 8}),
    ("sr", {"scale": 4, "kernel": "gaussian", "kernel_size": 7}),
    ("sr", {"scale": 3}),  # 32 is not divisible by 3: bicubic gives ceil(32 / 3)
    ("cs", {"channelwise": False, "ratio": 0.1}),
    ("inpaint", {"missing": 0.9}),
]
CASES = [(name, {}) for name in OPERATORS.names()] + VARIANTS
STEPS = [(1.0, 0.1), (0.2, 0.03)]  # (rho, sigma) for the data step


pytestmark = pytest.mark.usefixtures("one_thread")


def config(name: str) -> dict:
    """The operator's config values (if the file exists) with the small-test overrides."""
    path = ROOT / "conf" / "op" / f"{name}.yaml"
    params = OmegaConf.to_container(OmegaConf.load(path), resolve=True) if path.exists() else {}
    params.pop("name", None)
    return {**params, **SMALL.get(name, {})}


def build(name: str, shape=SHAPE, seed: int = 0, **params):
    generator = torch.Generator().manual_seed(seed)
    return OPERATORS.build(name, shape=shape, generator=generator, **{**config(name), **params})


def rand(*shape, seed=1):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def dot(a, b):
    return float((a * b).sum())


@pytest.fixture(scope="module", params=CASES, ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in p.items())}" for n, p in CASES])
def case(request):
    """(operator in float64, x, y = A x) for one registered operator and parameter set."""
    name, params = request.param
    op = build(name, **params).to(torch.float64)
    x = rand(2, *SHAPE)
    return op, x, op.A(x)


# ---------------------------------------------------------------- conformance (every operator)

def test_adjoint(case):
    op, x, y = case
    r = rand(*y.shape, seed=2) - 0.5
    lhs, rhs = dot(op.A(x), r), dot(x, op.A_adjoint(r))
    assert abs(lhs - rhs) <= 1e-6 * abs(lhs)


def test_linearity(case):
    op, x, _ = case
    x2 = rand(*x.shape, seed=3)
    assert torch.allclose(op.A(2.5 * x - 0.7 * x2), 2.5 * op.A(x) - 0.7 * op.A(x2), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("rho, sigma", STEPS)
def test_data_step_matches_cg(case, rho, sigma):
    op, x, y = case
    z = rand(*x.shape, seed=4)
    fast, reference = op.data_step(y, z, rho, sigma), op.data_step_cg(y, z, rho, sigma)
    assert fast.shape == x.shape and fast.dtype == torch.float64
    assert float((fast - reference).norm() / reference.norm()) < 1e-5


def test_shapes_dtype_and_batch(case):
    op, x, y = case
    assert y.dim() == 4 and y.shape[0] == 2 and y.dtype == torch.float64
    for image in (op.A_adjoint(y), op.baseline(y), op.init(y)):
        assert image.shape == x.shape and image.dtype == torch.float64
        assert torch.isfinite(image).all()
    single = op.A(x[1:])
    assert torch.allclose(y[1:], single, atol=1e-12)
    assert torch.allclose(op.baseline(y)[1:], op.baseline(single), atol=1e-10)
    z = rand(*x.shape, seed=5)
    assert torch.allclose(op.data_step(y, z, 1.0, 0.1)[1:], op.data_step(single, z[1:], 1.0, 0.1), atol=1e-8)


@pytest.mark.parametrize("name, params", [c for c in CASES if OPERATORS.get(c[0]).warm_start])
def test_warm_started_data_step_is_the_same_solution(name, params):
    """An operator with ``warm_start`` reaches the same minimiser from any start (solvers pass
    their previous solution); from the solution itself it stays there."""
    op = build(name, **params).double()
    x = rand(2, *SHAPE)
    y = op.A(x)
    z = rand(*x.shape, seed=4)
    cold = op.data_step(y, z, 1.0, 0.1)
    for start in (rand(*x.shape, seed=6), cold):
        warm = op.data_step(y, z, 1.0, 0.1, start=start)
        assert float((warm - cold).norm() / cold.norm()) < 1e-8


def test_data_step_when_z_already_fits(case):
    """z = x with y = A x: x is the minimizer (CG starts at its solution; b = 0 is the same case)."""
    op, x, y = case
    assert torch.allclose(op.data_step(y, x, 1.0, 0.1), x, atol=1e-8)


@pytest.mark.parametrize("name, params", CASES[: len(OPERATORS.names())] + VARIANTS[:2])
def test_float32_and_seed(name, params):
    """Built in float32 (as make_problem does), everything stays float32; the seed fixes A."""
    op, again = build(name, **params), build(name, **params)
    x = rand(1, *SHAPE).float()
    y = op.A(x)
    assert y.dtype == torch.float32 and torch.equal(y, again.A(x))
    for image in (op.A_adjoint(y), op.baseline(y), op.data_step(y, x, 1.0, 0.1)):
        assert image.dtype == torch.float32 and image.shape == x.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", OPERATORS.names())
def test_cuda(name):
    op = build(name).to("cuda")
    x = torch.rand(1, *SHAPE, device="cuda")
    y = op.A(x)
    for image in (op.A_adjoint(y), op.baseline(y), op.data_step(y, x, 1.0, 0.1)):
        assert image.device.type == "cuda" and image.shape == x.shape


# ---------------------------------------------------------------- blur and kernels

def test_circular_blur_is_scipy_convolve_wrap(tmp_path):
    from scipy.ndimage import convolve

    kernel = np.random.default_rng(0).random((4, 7))  # asymmetric, even height: orientation and centre
    np.save(tmp_path / "k.npy", kernel)
    op = build("blur", shape=(1, 20, 24), kernel=str(tmp_path / "k.npy"), boundary="circular").double()
    x = rand(1, 1, 20, 24)
    expected = convolve(x[0, 0].numpy(), kernel / kernel.sum(), mode="wrap")
    np.testing.assert_allclose(op.A(x)[0, 0].numpy(), expected, atol=1e-7)  # kernel stored in float32


def test_valid_blur_is_conv2_valid(tmp_path):
    from scipy.signal import convolve2d

    kernel = np.random.default_rng(1).random((5, 8))
    np.save(tmp_path / "k.npy", kernel)
    op = build("blur", shape=(3, 20, 24), kernel=str(tmp_path / "k.npy")).double()
    x = rand(2, 3, 20, 24)
    y = op.A(x)
    assert y.shape == (2, 3, 16, 17)
    np.testing.assert_allclose(y[1, 2].numpy(), convolve2d(x[1, 2].numpy(), kernel / kernel.sum(), "valid"), atol=1e-7)
    assert op.baseline(y).shape == x.shape
    assert torch.allclose(op.baseline(torch.full_like(y, 0.3)), torch.full_like(x, 0.3))
    delta = np.zeros((4, 6))
    delta[2, 3] = 1  # the centre (h // 2, w // 2) of an even kernel, as scipy and deepinv place it
    np.save(tmp_path / "delta.npy", delta)
    op = build("blur", shape=(3, 20, 24), kernel=str(tmp_path / "delta.npy")).double()
    assert torch.allclose(op.baseline(op.A(x))[..., 1:-2, 2:-3], x[..., 1:-2, 2:-3], atol=1e-12)  # aligned pad


def test_generated_kernels():
    from pnp.operators.kernels import make_kernel

    g = make_kernel("gaussian", 9, 1.6)
    assert g.shape == (9, 9) and torch.isclose(g.sum(), torch.tensor(1.0, dtype=g.dtype))
    assert torch.equal(g, g.flip(0)) and torch.equal(g, g.T) and g.argmax() == 40
    assert torch.allclose(make_kernel("box", 3), torch.full((3, 3), 1 / 9, dtype=torch.float64))
    m1 = make_kernel("motion", 15, generator=torch.Generator().manual_seed(5))
    m2 = make_kernel("motion", 15, generator=torch.Generator().manual_seed(5))
    assert torch.equal(m1, m2) and (m1 >= 0).all() and abs(float(m1.sum()) - 1) < 1e-12


@needs_kernels
def test_shared_kernel_files():
    from pnp.operators.kernels import load_kernel

    def npy(path):
        return np.load(KERNELS / path)

    levin = KERNELS / "levin" / "Levin09.mat"  # MATLAB v7.3 (HDF5), transposed on disk
    for i in (1, 4, 8):
        np.testing.assert_allclose(load_kernel(f"{levin}:kernels:{i}"), npy(f"levin/levin_{i}.npy"), atol=1e-12)
    np.testing.assert_allclose(load_kernel(str(levin)), npy("levin/levin_1.npy"), atol=1e-12)
    kf = KERNELS / "krishnan_fergus" / "kernels.mat"  # v5, plain variables
    np.testing.assert_allclose(load_kernel(f"{kf}:kernel2"), npy("krishnan_fergus/kf_2.npy"), atol=1e-12)
    np.testing.assert_allclose(load_kernel(str(kf)), npy("krishnan_fergus/kf_1.npy"), atol=1e-12)
    dmsp = KERNELS / "dmsp_schelten5" / "kernels.mat"  # v5, a 1x5 cell of non-square kernels
    np.testing.assert_allclose(load_kernel(str(dmsp)), npy("dmsp_schelten5/dmsp_1.npy"), atol=1e-12)
    assert load_kernel(f"{dmsp}:kernels:3").shape == (33, 37)
    usrnet = KERNELS / "usrnet12" / "kernels_12.mat"  # float32 cells
    np.testing.assert_allclose(load_kernel(f"{usrnet}:kernels:12"), npy("usrnet12/usrnet_12.npy"), atol=1e-7)
    np.testing.assert_allclose(load_kernel(str(KERNELS / "levin" / "levin_3.npy")), npy("levin/levin_3.npy"))
    op = build("blur", shape=(1, 40, 40), kernel=f"{levin}:kernels:4")
    assert op.A(torch.rand(1, 1, 40, 40)).shape == (1, 1, 14, 14)


def test_kernel_files_written_here(tmp_path):
    import h5py
    import scipy.io
    from PIL import Image

    from pnp.operators.kernels import load_kernel

    k = np.arange(1.0, 13.0).reshape(3, 4)  # asymmetric, non-square
    expected = k / k.sum()
    np.save(tmp_path / "k.npy", k)
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = 2 * k, k.T
    scipy.io.savemat(tmp_path / "v5.mat", {"sigma": 1.6, "psf": k, "cell": cell})
    with h5py.File(tmp_path / "v73.mat", "w") as f:  # MATLAB v7.3 layout: column-major, cells as references
        f["psf"] = k.T
        refs = [f.create_dataset(f"#refs#/{i}", data=a.T).ref for i, a in enumerate((k, k.T))]
        f.create_dataset("cell", data=np.array(refs, dtype=h5py.ref_dtype).reshape(2, 1))
    Image.fromarray((k * 20).astype(np.uint8), mode="L").save(tmp_path / "k.png")

    np.testing.assert_allclose(load_kernel(str(tmp_path / "k.npy")), expected)
    np.testing.assert_allclose(load_kernel(str(tmp_path / "v5.mat")), expected)  # skips the 1x1 'sigma'
    np.testing.assert_allclose(load_kernel(f"{tmp_path}/v5.mat:cell:2"), expected.T)
    np.testing.assert_allclose(load_kernel(f"{tmp_path}/v5.mat:cell"), expected)  # a cell: its first kernel
    np.testing.assert_allclose(load_kernel(f"{tmp_path}/v73.mat:psf"), expected)
    np.testing.assert_allclose(load_kernel(f"{tmp_path}/v73.mat:cell:2"), expected.T)
    np.testing.assert_allclose(load_kernel(str(tmp_path / "k.png")), expected)


# ---------------------------------------------------------------- super-resolution

def test_bicubic_keeps_constants_and_samples_ramps_at_matlab_centres():
    op = build("sr", shape=(1, 33, 31), scale=3).double()
    assert op.A(torch.ones(1, 1, 33, 31, dtype=torch.float64)).shape == (1, 1, 11, 11)
    assert torch.allclose(op.A(torch.full((1, 1, 33, 31), 0.4, dtype=torch.float64)), torch.tensor(0.4, dtype=torch.float64))
    op = build("sr", shape=(1, 32, 32), scale=2).double()
    ramp = torch.arange(32, dtype=torch.float64).expand(1, 1, 32, 32)  # x[.., j] = j
    centres = 2 * (torch.arange(16, dtype=torch.float64) + 0.5) - 0.5
    interior = slice(2, 14)  # the 8-tap antialiased kernel reaches the mirrored border 2 pixels in
    assert torch.allclose(op.A(ramp)[0, 0, 0, interior], centres[interior], atol=1e-12)
    assert torch.allclose(op.baseline(op.A(torch.full((1, 1, 32, 32), 0.7, dtype=torch.float64))), torch.tensor(0.7, dtype=torch.float64))


@pytest.mark.parametrize("scale, size", [(2, (32, 32)), (3, (31, 35)), (4, (37, 40))])
def test_bicubic_matches_deepinv_matlab_port(scale, size):
    """deepinv's imresize_matlab (a port of bicubic_pytorch) is an independent implementation."""
    from deepinv.physics.functional import imresize_matlab

    op = build("sr", shape=(3, *size), scale=scale).double()
    x = rand(1, 3, *size)
    y = op.A(x)
    assert torch.allclose(y, imresize_matlab(x, scale=1 / scale), atol=1e-10)
    assert torch.allclose(op.baseline(y), imresize_matlab(y, sizes=size), atol=1e-10)


def test_kernel_sr_is_blur_then_decimation():
    from scipy.ndimage import convolve

    op = build("sr", shape=(1, 24, 24), scale=3, kernel="gaussian", kernel_size=7, kernel_sigma=1.2).double()
    x = rand(1, 1, 24, 24)
    k = op.physics.filter[0, 0].numpy()
    expected = convolve(x[0, 0].numpy(), k, mode="wrap")[::3, ::3]
    np.testing.assert_allclose(op.A(x)[0, 0].numpy(), expected, atol=1e-12)


def test_kernel_sr_baseline_is_aligned_with_the_samples():
    """Low-res pixel i sits on pixel 4 i: the upsampling grid is shifted to match (ramps survive)."""
    op = build("sr", shape=(1, 48, 48), scale=4, kernel="gaussian", kernel_size=9, kernel_sigma=1.0).double()
    ramp = torch.arange(48, dtype=torch.float64).expand(1, 1, 48, 48)
    error = (op.baseline(op.A(ramp)) - ramp)[..., 8:-12, 8:-12]  # away from the circular wrap
    assert float(error.abs().max()) < 1e-5


@needs_kernels
def test_sr_with_the_usrnet_bicubic_kernel_imitates_imresize():
    """blur by bicubic_x4.npy then keep pixels 0, 4, 8, ... ~ imresize(x, 1/4) on a smooth image."""
    op = build("sr", shape=(3, 64, 64), scale=4, kernel=str(KERNELS / "bicubic_sr" / "bicubic_x4.npy")).double()
    t = torch.linspace(0, 1, 64, dtype=torch.float64)
    smooth = (torch.sin(6 * t)[:, None] * torch.cos(4 * t)[None, :]).expand(1, 3, 64, 64)
    y = op.A(smooth)
    assert y.shape == (1, 3, 16, 16)
    assert float((y - build("sr", shape=(3, 64, 64), scale=4).double().A(smooth))[..., 2:-2, 2:-2].abs().max()) < 1e-3


# ---------------------------------------------------------------- masks, demosaicing, compressed sensing

def test_inpaint_mask_from_seed_and_file(tmp_path):
    from PIL import Image

    op = build("inpaint", shape=(3, 20, 20), missing=0.75)
    mask = op.mask
    assert mask.shape == (1, 1, 20, 20) and int(mask.sum()) == 100  # exactly 75 % removed, all channels alike
    y = op.A(rand(1, 3, 20, 20).float())
    assert (y[mask.expand_as(y) == 0] == 0).all()
    filled = op.baseline(y)
    assert torch.equal(filled * mask, y) and (filled[mask.expand_as(y) == 0] > 0).all()
    picture = np.zeros((20, 20), dtype=np.uint8)
    picture[:, :5] = 255
    Image.fromarray(picture).save(tmp_path / "mask.png")
    op = build("inpaint", shape=(3, 20, 20), mask=str(tmp_path / "mask.png"))
    assert int(op.mask.sum()) == 100 and op.mask[0, 0, 0, :5].all()
    assert torch.allclose(op.baseline(op.A(torch.full((1, 3, 20, 20), 0.6))), torch.tensor(0.6))


def test_demosaic_is_rggb_and_bilinear():
    op = build("demosaic", shape=(3, 6, 8))
    m = op.mask[0]
    assert m.sum(0).eq(1).all()  # one colour per pixel
    assert m[0, 0, 0] == 1 and m[1, 0, 1] == 1 and m[1, 1, 0] == 1 and m[2, 1, 1] == 1
    colour = torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1).expand(1, 3, 6, 8)
    assert torch.allclose(op.baseline(op.A(colour)), colour)
    ramp = torch.arange(8.0).expand(1, 3, 6, 8) / 8
    assert torch.allclose(op.baseline(op.A(ramp))[..., 1:-1, 1:-1], ramp[..., 1:-1, 1:-1], atol=1e-6)


def test_cs_matrix_and_pseudo_inverse():
    op = build("cs", shape=(1, 32, 32), ratio=0.25).double()
    m, n = op.matrix.shape
    assert (m, n) == (256, 1024)
    assert abs(float(op.matrix.var()) * m - 1) < 0.02 and abs(float(op.matrix.mean())) < 1e-3
    y = op.A(rand(2, 1, 32, 32))
    assert y.shape == (2, 1, 256, 1)
    assert torch.allclose(op.A(op.baseline(y)), y, atol=1e-10)  # the pseudo-inverse fits y exactly


# ---------------------------------------------------------------- bad inputs: one-line PnPError

def _npy(tmp_path, name, array):
    np.save(tmp_path / name, np.asarray(array, dtype=float))
    return str(tmp_path / name)


BAD = [
    ("blur", (3, 20, 20), {"kernel": "box", "kernel_size": 27}, "kernel 27x27 is larger than the image 20x20"),
    ("blur", (3, 32, 32), {"kernel": "/no/such/kernel.npy"}, "neither an existing file"),
    ("blur", (3, 32, 32), {"kernel": "garbage.npy"}, "could not read kernel file"),
    ("blur", (3, 32, 32), {"kernel": "zeros.npy"}, "sums to 0"),
    ("blur", (3, 32, 32), {"kernel": "negative.npy"}, "sums to -1"),
    ("blur", (3, 32, 32), {"kernel": "v5.mat:nope"}, "no variable 'nope'"),
    ("blur", (3, 32, 32), {"kernel": "v5.mat:cell:3"}, "cell index 3 out of range 1..2"),
    ("blur", (3, 32, 32), {"kernel": "gaussian", "kernel_sigma": 0}, "kernel_sigma must be > 0"),
    ("blur", (3, 32, 32), {"kernel": "box", "kernel_size": None}, "kernel_size must be a positive integer"),
    ("blur", (3, 32, 32), {"boundary": "reflect"}, "blur.boundary must be one of valid, circular"),
    ("blur", (3, 32, 32), {"radius": 3}, "unexpected keyword argument 'radius'"),
    ("sr", (3, 32, 32), {"scale": 1}, "sr.scale must be an integer from 2 to 8, got 1"),
    ("sr", (3, 32, 32), {"scale": 9}, "sr.scale must be an integer from 2 to 8, got 9"),
    ("sr", (3, 32, 32), {"scale": 2.5}, "sr.scale must be an integer from 2 to 8, got 2.5"),
    ("sr", (3, 32, 32), {"scale": 3, "kernel": "gaussian"}, "divisible by scale 3, got 32x32; crop the image to 30x30"),
    ("inpaint", (3, 32, 32), {"missing": 1.0}, "inpaint.missing must be a fraction in [0, 1), got 1.0"),
    ("inpaint", (3, 32, 32), {"missing": -0.1}, "inpaint.missing must be a fraction in [0, 1), got -0.1"),
    ("inpaint", (3, 32, 32), {"mask": "mask.png"}, "is 10x12 but the image is 32x32"),
    ("inpaint", (3, 32, 32), {"mask": "/no/such/mask.png"}, "mask file not found"),
    ("demosaic", (1, 32, 32), {}, "demosaic needs a colour image (3 channels), got 1 channel(s)"),
    ("demosaic", (3, 32, 32), {"pattern": "RGBG"}, "demosaic.pattern must be one of"),
    ("cs", (3, 128, 128), {}, "at most 12288 values (3x64x64 or 1x110x110), got 3x128x128 = 49152"),
    ("cs", (1, 16, 16), {"ratio": 0}, "cs.ratio must be in (0, 1], got 0"),
]


@pytest.mark.parametrize("name, shape, params, message", BAD, ids=[f"{b[0]}-{b[3][:30]}" for b in BAD])
def test_bad_input_raises_one_line_pnperror(tmp_path, name, shape, params, message):
    import scipy.io
    from PIL import Image

    (tmp_path / "garbage.npy").write_bytes(b"not a numpy file")
    _npy(tmp_path, "zeros.npy", np.zeros((3, 3)))
    _npy(tmp_path, "negative.npy", -np.ones((1, 2)) / 2)
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = np.ones((3, 3)), np.ones((2, 2))
    scipy.io.savemat(tmp_path / "v5.mat", {"cell": cell})
    Image.fromarray(np.full((10, 12), 255, dtype=np.uint8)).save(tmp_path / "mask.png")
    params = {k: (str(tmp_path / v) if isinstance(v, str) and (v.endswith((".npy", ".png")) or ".mat" in v)
                  and not v.startswith("/") else v) for k, v in params.items()}
    with pytest.raises(PnPError) as err:
        build(name, shape=shape, **params)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_valid_blur_fft_matches_direct_convolution_after_kernel_update():
    """A and A^T by FFT equal deepinv's direct valid convolution, also after the kernel
    changes (kernel-blind DMSP updates it in place; the cached spectrum must follow)."""
    op = build("blur", shape=(3, 30, 33), kernel="gaussian", kernel_size=7).double()
    x, y = rand(2, 3, 30, 33), rand(2, 3, 24, 27)
    for _ in range(2):
        assert torch.allclose(op.A(x), op.physics.A(x), atol=1e-12)
        assert torch.allclose(op.A_adjoint(y), op.physics.A_adjoint(y), atol=1e-12)
        op.physics.update_parameters(filter=torch.rand(1, 1, 7, 7, dtype=torch.float64))


def test_cached_kernel_spectrum_never_outlives_its_kernel():
    """Kernel-blind DMSP swaps the filter tensor many times per step (deepinv's
    ``A(x, filter=k)`` sets it), so a replaced filter's memory is reused by a later one: a
    cache keyed by the tensor's address served the old kernel's spectrum (12 of 20 rounds
    here before the fix; kernel-blind runs then used a stale kernel in some iterations)."""
    op = build("blur", shape=(1, 30, 33), kernel="gaussian", kernel_size=7)
    x = rand(1, 1, 30, 33).float()
    for _ in range(20):
        op.A(x)  # caches the current kernel's spectrum
        op.physics.update_parameters(filter=torch.rand(1, 1, 7, 7))  # a passing kernel frees it
        op.physics.update_parameters(filter=torch.rand(1, 1, 7, 7))  # likely in the freed memory
        assert torch.allclose(op.A(x), op.physics.A(x), atol=1e-6)
