"""Classical Gaussian denoisers with the network's interface: ``D(x, sigma)`` on N x C x H x W
images in [0, 1], sigma on the [0, 1] scale (a number, or one per batch element).

Chosen with ``prior.denoiser.name`` (``network`` is the learned denoiser of
``pnp.models.loading``) by every prior built on a denoiser: the PnP proximal step, RED, DMSP.
Both run on the CPU in float64 NumPy, one image of the batch at a time, and return a tensor on
the input's device and dtype. They are not differentiable (``differentiable = False``): a prior
that needs the denoiser's Jacobian (DAEP) refuses them.

- ``bm3d``: block-matching and 3-D collaborative filtering (Dabov, Foi, Katkovnik & Egiazarian,
  "Image Denoising by Sparse 3-D Transform-Domain Collaborative Filtering", IEEE TIP 16(8),
  2007), by the ``bm3d`` package of Makinen, Azzari & Foi (2020): ``bm3d.bm3d`` for gray images,
  ``bm3d.bm3d_rgb`` for colour (block matching on the luminance of the opponent colour
  transform, ``colorspace='opp'``), both stages (hard thresholding, then Wiener filtering), the
  package's default profile ``'np'``, noise standard deviation on the image's own [0, 1] scale
  as the package expects. Other channel counts: gray BM3D per channel. The profile's threads are
  torch's (``torch.get_num_threads()``, the config's ``threads``) instead of the package's
  "automatic" (every core): on a shared 2-core machine its automatic choice took 1.12 s for a
  32 x 32 image against 0.47 s on one thread, and one thread gives the same output on every
  run (the package notes that several threads change the aggregation order).
- ``nlm``: non-local means (Buades, Coll & Morel, CVPR 2005), by scikit-image's
  ``restoration.denoise_nl_means`` in its fast mode (Darbon et al. 2008: patch distances from
  integral images, every pixel of a patch weighted alike), 5 x 5 patches searched within 6
  pixels (a 13 x 13 window), the known noise variance subtracted from the patch distances
  (``sigma``) and the cut-off h = 0.8 sigma, scikit-image's recommended starting point for
  fast mode with sigma given. Colour images are filtered jointly (``channel_axis``: one weight
  per patch from all three channels).

sigma <= 0 returns the input unchanged (there is nothing to remove).
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import numpy as np
import torch
from torch import nn

from pnp.errors import PnPError

NETWORK = "network"


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


class ClassicalDenoiser(nn.Module):
    """``forward(x, sigma)`` by ``denoise_one`` on each batch element (H x W or H x W x C float64)."""

    differentiable = False
    channels = None  # serves gray and colour images alike
    package = ""  # the PyPI package that implements it

    def denoise_one(self, image: np.ndarray, sigma: float) -> np.ndarray:
        raise NotImplementedError

    def settings(self) -> dict:
        """The settings it runs with, for the run record."""
        return {"package": f"{self.package} {_package_version(self.package)}"}

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected an N x C x H x W tensor, got shape {tuple(x.shape)}")
        sigmas = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu().reshape(-1)
        if sigmas.numel() not in (1, x.shape[0]):
            raise ValueError(f"sigma has {sigmas.numel()} values for a batch of {x.shape[0]}")
        images = x.detach().to("cpu", torch.float64).numpy()
        out = []
        for i, image in enumerate(images):
            s = float(sigmas[i if sigmas.numel() > 1 else 0])
            if s <= 0:
                out.append(image)
                continue
            hwc = image[0] if image.shape[0] == 1 else np.ascontiguousarray(image.transpose(1, 2, 0))
            restored = np.asarray(self.denoise_one(hwc, s), dtype=np.float64)
            out.append(restored[None] if restored.ndim == 2 else restored.transpose(2, 0, 1))
        return torch.from_numpy(np.stack(out)).to(x.device, x.dtype)


class BM3D(ClassicalDenoiser):
    """BM3D (Dabov et al. 2007) by the ``bm3d`` package: both stages, profile ``'np'``."""

    package = "bm3d"
    profile = "np"
    colorspace = "opp"

    def __init__(self):
        super().__init__()
        import bm3d

        self._bm3d = bm3d

    def denoise_one(self, image, sigma):
        profile = self._bm3d.BM3DProfile()  # the 'np' profile
        profile.num_threads = torch.get_num_threads()
        if image.ndim == 2:
            return self._bm3d.bm3d(image, sigma_psd=sigma, profile=profile)
        if image.shape[-1] == 3:
            return self._bm3d.bm3d_rgb(image, sigma_psd=sigma, profile=profile, colorspace=self.colorspace)
        return np.stack([self._bm3d.bm3d(image[..., c], sigma_psd=sigma, profile=profile)
                         for c in range(image.shape[-1])], axis=-1)

    def settings(self):
        return {**super().settings(), "profile": self.profile, "colorspace": self.colorspace, "stages": "both",
                "threads": torch.get_num_threads()}


class NonLocalMeans(ClassicalDenoiser):
    """Non-local means (Buades et al. 2005) by scikit-image, fast mode, h = 0.8 sigma."""

    package = "scikit-image"
    patch_size = 5  # pixels: 5 x 5 patches
    patch_distance = 6  # pixels: search window 13 x 13
    h_factor = 0.8  # h = 0.8 sigma (scikit-image: fast mode with sigma given)
    fast_mode = True

    def __init__(self):
        super().__init__()
        from skimage.restoration import denoise_nl_means

        self._nl_means = denoise_nl_means

    def denoise_one(self, image, sigma):
        return self._nl_means(image, patch_size=self.patch_size, patch_distance=self.patch_distance,
                              h=self.h_factor * sigma, sigma=sigma, fast_mode=self.fast_mode,
                              preserve_range=True, channel_axis=None if image.ndim == 2 else -1)

    def settings(self):
        return {**super().settings(), "patch_size": self.patch_size, "patch_distance": self.patch_distance,
                "h": f"{self.h_factor} sigma", "fast_mode": self.fast_mode}


CLASSICAL = {"bm3d": BM3D, "nlm": NonLocalMeans}
DENOISER_NAMES = (NETWORK, *CLASSICAL)
_MODULES = {"bm3d": "bm3d", "nlm": "skimage"}


def require_package(name: str) -> None:
    """A one-line PnPError naming the package to install when ``name``'s implementation does not import."""
    cls = CLASSICAL[name]
    try:
        __import__(_MODULES[name])
    except ImportError:
        raise PnPError(f"prior.denoiser.name={name} needs the {cls.package} package: pip install {cls.package}") from None


def load_classical(name: str) -> ClassicalDenoiser:
    """The classical denoiser ``name`` (``bm3d`` or ``nlm``)."""
    if name not in CLASSICAL:
        raise PnPError(f"prior.denoiser.name must be one of {', '.join(DENOISER_NAMES)}, got {name!r}")
    require_package(name)
    return CLASSICAL[name]()
