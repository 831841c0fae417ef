"""The Python API runs the same code path as the CLI."""
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


def test_red_denoises_nearly_as_well_as_one_denoiser_call():
    """RED's denoising preset (lambda sigma_n^2 = 3.1, sigma_e = 0.4 sigma_n) on a crop of the
    built-in image with the shipped network: well above the noisy image, near one denoiser call."""
    from pnp.io import default_image
    x0 = load_image(default_image())[..., 64:160, 96:192]
    kw = {"noise.sigma": 7.65, "seed": 0}
    _, red = restore(x0, op="denoise", prior="red", **kw)
    _, one = restore(x0, op="denoise", prior="denoiser", **kw)
    assert red["psnr"] > red["psnr_observed"] + 3.0
    assert red["psnr"] > one["psnr"] - 1.5
