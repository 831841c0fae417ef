"""The Python API runs the same code path as the CLI."""
import pytest
import torch

from pnp import PnPError, restore
from pnp.io import load_image


def test_restore_returns_tensor_and_metrics(color_png):
    x, m = restore(str(color_png), op="blur", prior="tv", **{
        "solver.iterations": 15, "op.kernel": "gaussian", "op.kernel_size": 7, "op.kernel_sigma": 1.2})
    assert x.shape == load_image(color_png).shape
    assert m["psnr"] > m["psnr_observed"] + 1.0 and m["solver"] == "fista"


def test_restore_matches_cli_observation(color_png):
    kw = {"solver.iterations": 2, "op.kernel": "gaussian", "op.kernel_size": 7, "seed": 5}
    _, m1 = restore(str(color_png), prior="tv", **kw)
    _, m2 = restore(load_image(color_png), prior="tv", solver="gd", **kw)
    assert m1["observation_sha256"] == m2["observation_sha256"]


def test_restore_observed_denoise():
    y = (torch.rand(1, 1, 24, 24) * 0.1 + 0.5)
    x, m = restore(y, op="denoise", prior="tv", observed=True, **{"noise.sigma": 10, "solver.iterations": 5})
    assert x.shape == y.shape and "psnr" not in m


def test_restore_bad_prior():
    try:
        restore(None, prior="nope")
    except PnPError as err:
        assert "unknown prior 'nope'" in str(err)
    else:
        raise AssertionError("expected PnPError")


DENOISE_CROP = {"noise.sigma": 7.65, "seed": 0}


@pytest.fixture(scope="module")
def denoise_crop():
    """A crop of the built-in image and one call of the shipped denoiser on it at noise 7.65."""
    from pnp.io import default_image
    x0 = load_image(default_image())[..., 64:160, 96:192]
    _, one = restore(x0, op="denoise", prior="denoiser", **DENOISE_CROP)
    return x0, one


@pytest.mark.parametrize("prior, gain", [("red", 3.0), ("dmsp", 3.0), ("daep", 3.0), ("tv", 2.0)])
def test_each_prior_denoises_well_above_the_noisy_image(prior, gain, denoise_crop):
    """The denoising presets (conf/prior/presets/*.yaml, ``denoise:``) on a crop of the built-in
    image at noise 7.65: each prior gains ``gain`` dB over the noisy image (the deblurring-style
    values they had before gained 0.7-1.8 dB on the validation crops), and the learned priors
    end within 1.5 dB of one call of the shipped denoiser."""
    x0, one = denoise_crop
    _, out = restore(x0, op="denoise", prior=prior, **DENOISE_CROP)
    assert out["psnr"] > out["psnr_observed"] + gain
    if prior != "tv":
        assert out["psnr"] > one["psnr"] - 1.5
