"""Base class of the image priors (config group ``prior``).

The restoration energy is E(x) = ||Ax - y||^2 / (2 sigma^2) + weight * R(x): ``weight`` (lambda)
is the prior's weight relative to the data term in units of the [0, 1] image scale. A prior
implements the methods of the capabilities it declares in ``provides``.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import ClassVar, Mapping

import torch

from pnp.capabilities import Capability
from pnp.presets import evaluate


class Prior(torch.nn.Module):
    provides: ClassVar[frozenset[Capability]] = frozenset()
    auto_keys: ClassVar[dict[str, float]] = {}  # keys that accept "auto", with the value used without a preset
    # Several images may be solved as one batch (each a batch element, nothing shared between
    # them); a prior that keeps per-image state (a noise or kernel estimate) sets it false.
    batchable: bool = True
    # What a run adds to its record beyond the restored image (scalars go to metrics.json,
    # images to files), read after solving; a prior that estimates something overrides it.
    outputs: Mapping[str, object] = MappingProxyType({})

    def __init__(self, weight: float = 1.0, preset: dict | None = None):
        super().__init__()
        self.weight = float(weight)
        self.preset = dict(preset or {})  # this operator's rules (pnp.presets), set by the runner

    def check(self, problem) -> None:
        """Raise a one-line PnPError if the prior cannot serve ``problem`` (before any loading or
        work). Default: every problem fits."""

    def setup(self, problem) -> None:
        """Called once before solving: check the problem fits (``check``), move networks to its
        device."""
        self.check(problem)

    def problem_to_solve(self, problem):
        """The problem the solver works on, asked after ``setup``: ``problem`` itself (default), or,
        for a prior that estimates part of the operator (kernel-blind DMSP), a copy of it whose
        operator is that estimate. The given problem and its operator are never changed."""
        return problem

    def noise_level(self, problem) -> float:
        """The noise level (0-255) that presets are looked up at: the problem's."""
        return 255.0 * problem.sigma

    def preset_values(self, problem) -> dict[str, float | str]:
        """The value of every ``auto_keys`` key for ``problem``: its preset rule at the problem's
        noise level (looked up once) and the operator's scale, else the ``auto_keys`` value."""
        noise, scale = self.noise_level(problem), problem.op.scale
        return {key: evaluate(self.preset.get(key, fallback), noise, scale) for key, fallback in self.auto_keys.items()}

    def params(self) -> dict:
        """Every hyperparameter this prior runs with, after presets and ``auto`` rules (noise-like
        values in 0-255 units). Default: its public scalar attributes; priors that keep a
        noise level on the [0, 1] scale override it."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "training"
                and (v is None or isinstance(v, (bool, int, float, str)))}

    def energy(self, x: torch.Tensor) -> torch.Tensor | None:
        """R(x) per batch element, where defined (for the objective in convergence.csv)."""
        return None

    def grad(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """GRADIENT: the gradient of R at x (or the prior's descent direction) at iteration ``step``."""
        raise NotImplementedError

    def balance(self, x: torch.Tensor, problem, step: int) -> tuple[float, float]:
        """(data weight, prior weight) of the gradient g = a A^T(Ax - y) + b grad R(x).

        Default: (1 / sigma^2, lambda), the gradient of E. DAEP/DMSP override it with their
        authors' weighting schemes.
        """
        return 1.0 / problem.sigma_eff**2, self.weight

    def prox(self, z: torch.Tensor, tau: float) -> torch.Tensor:
        """PROX: argmin_v tau R(v) + ||v - z||^2 / 2; a Gaussian denoiser at sigma = sqrt(tau)."""
        raise NotImplementedError

    def score(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """SCORE: grad log p_sigma(x), p smoothed by N(0, sigma^2) (Tweedie: (D(x, sigma) - x) / sigma^2)."""
        raise NotImplementedError
