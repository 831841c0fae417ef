"""A third-party prior in a few lines: Tikhonov smoothness R(x) = ||grad x||^2 / 2 (Tikhonov 1963)."""
import torch
import torch.nn.functional as F

from pnp.capabilities import Capability
from pnp.prior import Prior

LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


class Tikhonov(Prior):
    provides = frozenset({Capability.GRADIENT})

    def grad(self, x, step):
        """grad R(x) = -Laplacian(x), Neumann boundary (replicate padding)."""
        kernel = LAPLACIAN.to(x).expand(x.shape[1], 1, 3, 3)
        return -F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])

    def energy(self, x):
        dh, dv = x.diff(dim=-1), x.diff(dim=-2)
        return 0.5 * (dh.pow(2).flatten(1).sum(1) + dv.pow(2).flatten(1).sum(1))
