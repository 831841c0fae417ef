"""The EPLL prior (priors/epll.py) and its Gaussian-mixture patch model (pnp/train_gmm.py):
the shipped model, the patch step against its formula, restoration gains on small fixed
problems, and bad GMM files."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import SHARED, run_cli
from pnp.api import restore
from pnp.errors import PnPError
from pnp.io import default_image, load_image
from pnp.priors.epll import EPLL, load_gmm
from pnp.registry import check_compatible
from pnp.train_gmm import SHIPPED_GMM, TRAIN_CONFIG

REPO = Path(__file__).resolve().parents[1]
BLUR = {"op.kernel": "gaussian", "op.kernel_size": 7, "op.kernel_sigma": 1.2, "op.boundary": "valid"}
needs_train = pytest.mark.skipif(not (SHARED / "train" / "train400").is_dir(), reason="needs ../shared/data/train")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def crop(size: int = 48) -> torch.Tensor:
    x = load_image(default_image())
    h, w = x.shape[-2:]
    return x[..., (h - size) // 2:(h + size) // 2, (w - size) // 2:(w + size) // 2]


def test_the_shipped_gmm_has_the_documented_shape():
    gmm, p = load_gmm()
    assert p == 8 and gmm.n_components == 200 and gmm.mu.shape == (200, 64)
    assert gmm.get_cov().shape == (200, 64, 64)
    assert torch.allclose(gmm.get_weights().sum(), torch.tensor(1.0))
    # the model is of zero-mean patches: no patch has a DC component, so no mean has one
    assert gmm.mu.sum(1).abs().max() < 1e-3
    assert SHIPPED_GMM.stat().st_size < 5e6


@needs_train
def test_the_gmm_explains_held_out_patches_better_than_one_gaussian_fitted_to_them():
    """Patches of held-out Train400 images (conf/train.yaml data.holdout): mean log-likelihood
    under the shipped GMM against a single Gaussian fitted to these very patches (the best any
    one Gaussian can do on them)."""
    from deepinv.utils import patch_extractor

    from pnp.io import load_image as read

    held = OmegaConf.load(TRAIN_CONFIG).data.holdout.train400[:4]
    torch.manual_seed(0)
    patches = torch.cat([patch_extractor(read(SHARED / "train" / "train400" / name),
                                         500, 8)[0].reshape(500, 64) for name in held])
    patches = patches - patches.mean(1, keepdim=True)
    gmm, _ = load_gmm()
    ll_gmm = -float(gmm(patches).mean())
    cov = torch.cov(patches.T) + 1e-5 * torch.eye(64)
    gauss = torch.distributions.MultivariateNormal(patches.mean(0), covariance_matrix=cov)
    ll_gauss = float(gauss.log_prob(patches).mean())
    # measured: 171.5 against 139.3 nats per patch
    assert ll_gmm > ll_gauss + 20.0


def test_classify_is_deepinvs_most_likely_component():
    prior = EPLL(block=100)
    g = torch.Generator().manual_seed(0)
    patches = 0.05 * torch.randn(300, 64, generator=g).cumsum(1)  # correlated, like image patches
    patches = patches - patches.mean(1, keepdim=True)
    prior._gmm.set_cov_reg((7.65 / 255) ** 2)
    ours = prior.classify(patches)
    reference = prior._gmm.classify(patches, cov_regularization=True)
    assert (ours == reference).float().mean() > 0.99


def test_patch_map_is_the_wiener_filter_of_the_most_likely_component():
    prior = EPLL()
    g = torch.Generator().manual_seed(1)
    patches = 0.05 * torch.randn(50, 64, generator=g).cumsum(1)
    patches = patches - patches.mean(1, keepdim=True)
    tau = (15 / 255) ** 2
    out = prior.patch_map(patches, tau)
    gmm = prior._gmm
    k = gmm.classify(patches, cov_regularization=True)
    for i in (0, 17, 49):
        cov, mu = gmm.get_cov()[k[i]], gmm.mu[k[i]]
        expected = mu + cov @ torch.linalg.solve(cov + tau * torch.eye(64), patches[i] - mu)
        assert torch.allclose(out[i], expected, atol=1e-4)


def test_prox_at_a_vanishing_level_returns_its_input_and_shrinks_noise_at_a_larger_one():
    x = crop(24)
    prior = EPLL()
    assert torch.allclose(prior.prox(x, 1e-10), x, atol=1e-3)  # float32 Wiener filters: 1e-4 of the range
    noisy = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert (prior.prox(noisy, 0.01) - x).pow(2).mean() < 0.5 * (noisy - x).pow(2).mean()


# Measured on these 48x48 crops, epll + hqs with the config's defaults: deblurring gain 2.3 dB,
# denoising gain 5.2 dB (colour and gray) over the observation; the margins asserted leave slack.
def test_epll_hqs_deblurs_a_small_crop():
    x, m = restore(crop(), op="blur", prior="epll", **{**BLUR, "noise.sigma": 7.65})
    assert m["psnr"] > m["psnr_observed"] + 1.5


def test_epll_denoises_gray_and_colour_crops():
    for image in (crop(), crop().mean(1, keepdim=True)):
        x, m = restore(image, op="denoise", prior="epll", **{"noise.sigma": 25.0})
        assert x.shape == image.shape
        assert m["psnr"] > m["psnr_observed"] + 4.0  # measured +5.2


def test_the_record_names_the_gmm_file_and_its_digest():
    import hashlib

    _, m = restore(crop(16), op="denoise", prior="epll", **{"solver.iterations": 1})
    params = m["params"]["prior"]
    assert Path(params["gmm"]) == SHIPPED_GMM
    assert params["gmm_sha256"] == hashlib.sha256(SHIPPED_GMM.read_bytes()).hexdigest()
    assert params["components"] == 200 and params["patch_size"] == 8 and params["weight"] == 0.23


def test_a_gradient_solver_is_refused_naming_what_fits():
    with pytest.raises(PnPError, match="solvers that fit 'epll': .*hqs"):
        check_compatible("epll", "gd")


def test_bad_gmm_files_are_one_line(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(PnPError, match="cannot load GMM file .*corrupt.pt") as err:
        EPLL(gmm=str(corrupt))
    assert "\n" not in str(err.value)
    wrong = tmp_path / "wrong.pt"
    torch.save({"weights": torch.ones(3), "mu": torch.zeros(3, 60), "cov": torch.eye(60).repeat(3, 1, 1)}, wrong)
    with pytest.raises(PnPError, match="shapes do not fit"):
        EPLL(gmm=str(wrong))
    with pytest.raises(PnPError, match="not found"):
        EPLL(gmm=str(tmp_path / "missing.pt"))
    with pytest.raises(PnPError, match="at least 8x8"):
        restore(crop(6), op="denoise", prior="epll")
    run = run_cli("prior=epll", "op=denoise", f"prior.gmm={corrupt}", f"hydra.run.dir={tmp_path / 'run'}", cwd=REPO)
    assert run.returncode != 0
    assert "cannot load GMM file" in run.stderr and "Traceback" not in run.stderr


@needs_train
def test_train_gmm_writes_a_loadable_model(tmp_path):
    out = tmp_path / "gmm.pt"
    run = run_cli("--components", "2", "--patches", "300", "--iterations", "2", "--out", str(out),
                  cwd=REPO, module="pnp.train_gmm", env={"OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    gmm, p = load_gmm(out)
    assert p == 8 and gmm.n_components == 2
    info = torch.load(out, weights_only=True)
    assert info["patches"] == 300 and info["iterations"] == 2 and math.isfinite(info["train_log_likelihood"])
    bad = run_cli("--components", "0", "--out", str(out), cwd=REPO, module="pnp.train_gmm")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
