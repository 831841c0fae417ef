"""Demosaicing: one colour per pixel through a Bayer colour filter array (config ``op=demosaic``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from deepinv.physics import Inpainting

from pnp.operators.inpaint import MaskedOperator

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")


class Demosaic(MaskedOperator):
    """y = m . x with the Bayer mask m (3 x H x W): each pixel keeps one colour channel.

    ``pattern`` names the colours of the 2 x 2 tile in reading order: RGGB (default) has red at
    (0, 0), green at (0, 1) and (1, 0), blue at (1, 1). (deepinv ``Demosaicing``'s "bayer" is BGGR,
    so the mask is built here and given to deepinv ``Inpainting``.) y is the masked 3-channel image.
    A = A^T = diag(m); data step elementwise: x = (m . y / sigma^2 + rho z) / (m / sigma^2 + rho).
    Baseline and init: bilinear demosaicing, i.e. normalized convolution of each channel's samples
    with [1 2 1; 2 4 2; 1 2 1] (red, blue) or [0 1 0; 1 4 1; 0 1 0] (green), which keeps the
    observed samples and averages the 2 or 4 nearest ones elsewhere (also at the border).
    """

    def __init__(self, shape, generator: torch.Generator | None = None, pattern: str = "RGGB"):
        super().__init__(shape, generator)
        C, H, W = self.shape
        self.require(C == 3, f"demosaic needs a colour image (3 channels), got {C} channel(s)")
        self.require(H >= 2 and W >= 2, f"demosaic needs an image of at least 2x2 pixels, got {H}x{W}")
        pattern = str(pattern).upper()
        self.require(pattern in PATTERNS, f"demosaic.pattern must be one of {', '.join(PATTERNS)}, got '{pattern}'")
        mask = torch.zeros(3, H, W)
        for position, colour in enumerate(pattern):
            mask["RGB".index(colour), position // 2::2, position % 2::2] = 1
        self.physics = Inpainting(img_size=self.shape, mask=mask, pixelwise=False)

    def baseline(self, y):
        corner = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])
        cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]])
        kernels = torch.stack([corner, cross, corner])[:, None].to(y)
        mask = self.mask.to(y.dtype).expand_as(y)
        samples = F.conv2d(y * mask, kernels, padding=1, groups=3)
        return samples / F.conv2d(mask, kernels, padding=1, groups=3)
