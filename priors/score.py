"""The score of a noise-conditional Gaussian denoiser (config ``prior=score``).

For x = x0 + sigma n with x0 ~ p and n ~ N(0, I), the MMSE denoiser D(x, sigma) = E[x0 | x] gives
the score of the smoothed density p_sigma = p * N(0, sigma^2 I) by Tweedie's formula
(Miyasawa 1961; Efron 2011):

    s(x, sigma) = grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2

which drives the ``langevin`` sampler (Song & Ermon 2019; Kadkhodaie & Simoncelli 2021).
"""
from __future__ import annotations

from typing import Callable

import torch

from pnp.capabilities import Capability
from pnp.priors._denoiser_mixin import LearnedPrior


class ScorePrior(LearnedPrior):
    """s(x, sigma) = (D(x, sigma) - x) / sigma^2, sigma on the [0, 1] scale (a float or one per image).

    ``denoiser``: the config ``{weights: null (the shipped denoiser) or a file, precision: fp32 | bf16}``
    loaded in ``setup``, or any callable ``D(x, sigma)`` (e.g. an analytic denoiser in tests).
    """

    provides = frozenset({Capability.SCORE})

    def __init__(self, denoiser: dict | Callable | None = None):
        injected = denoiser if callable(denoiser) else None
        super().__init__(denoiser=None if injected else denoiser)
        if injected is not None:
            self.set_network(injected)

    @torch.no_grad()
    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """D(x, sigma): the MMSE estimate of the clean image."""
        return self.net(x, sigma)

    def score(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """s(x, sigma) = (D(x, sigma) - x) / sigma^2 (Tweedie)."""
        return (self.denoise(x, sigma) - x) / sigma**2
