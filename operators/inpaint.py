"""Inpainting: y = m . x, pixels removed at random or by a mask image (config ``op=inpaint``)."""
from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from deepinv.physics import Inpainting

from pnp.errors import PnPError
from pnp.operator import Operator
from pnp.svd import diagonal


class MaskedOperator(Operator):
    """y = m . x for a binary mask m held by a deepinv ``Inpainting`` physics."""

    @property
    def mask(self) -> torch.Tensor:
        """1 where observed (1 x 1 x H x W for pixels, 1 x 3 x H x W per colour)."""
        return self.physics.mask

    provides = frozenset({"svd"})

    def svd(self):
        """A = diag(m): U = V = I, s = m (0 where a value is missing)."""
        return diagonal(self.mask.to(torch.float64).expand(1, *self.shape))

    def restrict(self, y):
        """Unobserved values carry no data: y = m . (A x + n)."""
        return y * self.mask.to(y.dtype)


class Inpaint(MaskedOperator):
    """y = m . x with a binary mask m (1 = observed), the same for every colour channel.

    A = A^T = diag(m) (deepinv ``Inpainting``); y keeps the image's shape, zeros where missing.
    Data step elementwise: x = (m . y / sigma^2 + rho z) / (m / sigma^2 + rho).
    ``missing``: the fraction of pixels removed, exactly round(missing H W) of them, drawn with
    the generator; or ``mask``: a mask image file of size H x W (white = observed), which then
    replaces ``missing``. Baseline and init: the missing pixels filled by normalized convolution
    (``fill_missing``); the observed pixels are kept.
    """

    def __init__(self, shape, generator: torch.Generator | None = None, missing: float = 0.5,
                 mask: str | None = None):
        super().__init__(shape, generator)
        _, H, W = self.shape
        if mask is not None:
            observed = load_mask(mask, (H, W))
        else:
            self.require(isinstance(missing, (int, float)) and 0 <= missing < 1,
                         f"inpaint.missing must be a fraction in [0, 1), got {missing}")
            generator = generator if generator is not None else torch.Generator().manual_seed(0)
            removed = min(round(missing * H * W), H * W - 1)
            observed = torch.ones(H * W)
            observed[torch.randperm(H * W, generator=generator)[:removed]] = 0
        self.physics = Inpainting(img_size=self.shape, mask=observed.reshape(1, H, W).to(torch.get_default_dtype()))

    def baseline(self, y):
        return fill_missing(y * self.mask, self.mask)


def load_mask(path: str, size: tuple[int, int]) -> torch.Tensor:
    """H x W float mask from an image file: white (> 0.5 after grayscale conversion) = observed."""
    from PIL import Image

    path = os.path.expandvars(os.path.expanduser(str(path)))
    if not os.path.isfile(path):
        raise PnPError(f"mask file not found: {path}")
    try:
        with Image.open(path) as image:
            gray = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    except Exception as err:
        raise PnPError(f"could not read mask image {path}: {type(err).__name__}: {err}") from None
    if gray.shape != tuple(size):
        raise PnPError(f"mask {path} is {gray.shape[0]}x{gray.shape[1]} but the image is {size[0]}x{size[1]}")
    observed = torch.from_numpy(gray > 0.5).double()
    if observed.sum() == 0:
        raise PnPError(f"mask {path} observes no pixel (white = observed)")
    return observed


def fill_missing(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill the pixels where ``mask`` is 0 by normalized convolution at growing widths.

    At Gaussian width s = 1, 2, 4, ... the estimate is G_s * (m . y) / G_s * m; a missing pixel
    takes it at the first width where its weight G_s * m reaches half the observed fraction
    mean(m) (enough observed neighbours), and at the last width (s >= image size) wherever
    G_s * m > 0. Observed pixels keep y.
    """
    mask = mask.to(y.dtype).expand(y.shape[0], 1, *y.shape[-2:])
    result, done = y * mask, mask > 0
    sigma, largest, threshold = 1.0, max(y.shape[-2:]), 0.5 * float(mask.mean())
    while not bool(done.all()):
        weight = gaussian_smooth(mask, sigma, largest)
        estimate = gaussian_smooth(y * mask, sigma, largest) / weight.clamp_min(torch.finfo(y.dtype).tiny)
        take = ~done & (weight > (threshold if sigma < largest else 0))
        result = torch.where(take, estimate, result)
        done = done | take
        sigma *= 2
    return result


def gaussian_smooth(x: torch.Tensor, sigma: float, max_radius: int) -> torch.Tensor:
    """Separable Gaussian filter of width ``sigma`` (radius 3 sigma, at most ``max_radius``),
    replicate boundary."""
    radius = min(math.ceil(3 * sigma), max_radius)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-t**2 / (2 * sigma**2))
    g = g / g.sum()
    channels = x.shape[1]
    x = F.pad(x, (radius,) * 4, mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
